// wardgate console: the one script the Content-Security-Policy allows.
// It shows every <time> in the viewer's time zone; the page is complete
// without it (times in UTC), and the UTC time stays in the title, shown
// on hover.
(function () {
  "use strict";
  var fmt;
  try {
    fmt = new Intl.DateTimeFormat(undefined, {
      year: "numeric", month: "short", day: "2-digit",
      hour: "2-digit", minute: "2-digit", timeZoneName: "short"
    });
  } catch (e) {
    return;
  }
  var els = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < els.length; i++) {
    var el = els[i];
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d.getTime())) continue;
    el.textContent = fmt.format(d);
    el.setAttribute("data-local", "true");
  }
})();
