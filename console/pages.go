package console

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/evidence"
)

// maxParam bounds every query parameter.
const maxParam = 256

// states are the risk states, most severe first.
var states = []string{evidence.RiskQuarantined, evidence.RiskSuspicious, evidence.RiskClean}

// params reads query parameters: each at most once, at most maxParam
// bytes, only the known ones.
func params(r *http.Request, known ...string) (url.Values, error) {
	q := r.URL.Query()
	for k, v := range q {
		if !slices.Contains(known, k) {
			return nil, badRequest("Unknown parameter %q.", k)
		}
		if len(v) > 1 {
			return nil, badRequest("Parameter %q is given %d times.", k, len(v))
		}
		if len(v[0]) > maxParam {
			return nil, badRequest("Parameter %q is longer than %d bytes.", k, maxParam)
		}
	}
	return q, nil
}

func pageParam(q url.Values, size int) (Page, int, error) {
	n := 1
	if v := q.Get("page"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 1_000_000 {
			return Page{}, 0, badRequest("Page %q: want a number from 1.", v)
		}
		n = p
	}
	return Page{Offset: (n - 1) * size, Limit: size}, n, nil
}

func oneOf(name, v string, allowed ...string) error {
	if v != "" && !slices.Contains(allowed, v) {
		return badRequest("%s %q: want one of %s.", name, v, strings.Join(allowed, ", "))
	}
	return nil
}

func isHex(s string) bool { return strings.Trim(s, "0123456789abcdef") == "" }

// validDigest accepts sha256:<64 lowercase hex>.
func validDigest(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(h) == 64 && isHex(h)
}

// links builds URLs of the same page with some parameters changed.
type links struct{ u *url.URL }

// With returns the page's URL with the given key, value pairs set (an
// empty value removes the key). Changing anything but the page goes back
// to page 1.
func (l links) With(kv ...string) string {
	q := l.u.Query()
	page := false
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "page" {
			page = true
		}
		if kv[i+1] == "" {
			q.Del(kv[i])
		} else {
			q.Set(kv[i], kv[i+1])
		}
	}
	if !page {
		q.Del("page")
	}
	u := url.URL{Path: l.u.Path, RawQuery: q.Encode()}
	return u.String()
}

// Get returns a parameter of the page's URL.
func (l links) Get(k string) string { return l.u.Query().Get(k) }

// pager is the pagination of a list.
type pager struct {
	Page, Pages, Total int
	From, To           int
	Prev, Next         string
}

func newPager(l links, page, size, total int) pager {
	p := pager{Page: page, Total: total, Pages: max(1, (total+size-1)/size)}
	if total > 0 {
		p.From = (page-1)*size + 1
		p.To = min(page*size, total)
	}
	if page > 1 {
		p.Prev = l.With("page", strconv.Itoa(page-1))
	}
	if page < p.Pages {
		p.Next = l.With("page", strconv.Itoa(page+1))
	}
	return p
}

// --- updates -----------------------------------------------------------------

type updatesView struct {
	UpdatePage
	Query UpdateQuery
	Pager pager
	Links links
	Sorts []sortOption
}

type sortOption struct{ Key, Label string }

var updateSorts = []sortOption{{SortEvaluated, "Evaluated"}, {SortState, "Risk state"}, {SortVendor, "Vendor"}, {SortProduct, "Product"}, {SortInstalled, "Devices installed"}}

func (c *Console) updatesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	q, err := params(r, "state", "vendor", "class", "q", "sort", "order", "page")
	if err != nil {
		return err
	}
	uq := UpdateQuery{State: q.Get("state"), Vendor: q.Get("vendor"), Class: q.Get("class"), Sort: cmp.Or(q.Get("sort"), SortEvaluated)}
	// Without an order, each key sorts its natural way: names A to Z,
	// the rest newest, most severe or most installed first.
	uq.Desc = uq.Sort != SortVendor && uq.Sort != SortProduct
	if o := q.Get("order"); o != "" {
		uq.Desc = o == "desc"
	}
	if err := oneOf("State", uq.State, states...); err != nil {
		return err
	}
	if err := oneOf("Sort", uq.Sort, SortEvaluated, SortState, SortVendor, SortProduct, SortInstalled); err != nil {
		return err
	}
	if err := oneOf("Order", q.Get("order"), "asc", "desc"); err != nil {
		return err
	}
	if d := strings.TrimSpace(strings.ToLower(q.Get("q"))); d != "" {
		h := strings.TrimPrefix(d, "sha256:")
		if len(h) > 64 || !isHex(h) {
			return badRequest("Digest %q: search by the start of a sha256 digest (hexadecimal).", q.Get("q"))
		}
		uq.DigestPrefix = "sha256:" + h
	}
	var n int
	if uq.Page, n, err = pageParam(q, PageSize); err != nil {
		return err
	}
	p, err := c.data.Updates(r.Context(), uq)
	if err != nil {
		return err
	}
	l := links{r.URL}
	c.render(w, r, http.StatusOK, "updates", view{Title: "Updates", Nav: "updates", Session: s,
		Data: updatesView{UpdatePage: p, Query: uq, Pager: newPager(l, n, PageSize, p.Total), Links: l, Sorts: updateSorts}})
	return nil
}

// --- one update ------------------------------------------------------------------

type updateView struct {
	UpdateDetail
	Digest       string
	ContactRows  []contactRow
	VolumeRows   []volumeRow
	Plot         plotInfo
	Destinations []string
	BaselineHour int64 // the baseline line of the volume plot
	Installers   int
	// Quiet are the installers with no traffic to a new destination.
	Quiet []string
}

type contactRow struct {
	Contact
	Segment string
	Delay   time.Duration
	After   bool // the first contact came after the install
}

type volumeRow struct {
	Hour        time.Time
	Destination string
	Bytes       int64
	Connections int64
	Devices     int
	Above       bool // above the baseline line
}

// maxTableRows bounds the plots' text tables.
const maxTableRows = 500

func (c *Console) updateDetail(r *http.Request) (UpdateDetail, error) {
	d := r.PathValue("digest")
	if !validDigest(d) {
		return UpdateDetail{}, badRequest("Digest %q: want sha256: and 64 lowercase hexadecimal digits.", d)
	}
	if _, err := params(r); err != nil {
		return UpdateDetail{}, err
	}
	return c.data.Update(r.Context(), d)
}

func (c *Console) updatePage(w http.ResponseWriter, r *http.Request, s *session) error {
	ud, err := c.updateDetail(r)
	if err != nil {
		return err
	}
	v := updateView{UpdateDetail: ud, Digest: ud.Summary.Digest}
	seg := map[string]string{}
	for _, d := range ud.Devices {
		seg[d.Device] = d.Segment
	}
	series := newSeries(ud)
	v.Destinations, v.BaselineHour, v.Installers = series.dests, series.baseline, series.installers
	for _, ct := range ud.Contacts {
		v.ContactRows = append(v.ContactRows, contactRow{Contact: ct, Segment: seg[ct.Device], Delay: ct.First.Sub(ct.Installed), After: !ct.Installed.IsZero() && ct.First.After(ct.Installed)})
	}
	for _, d := range ud.Devices {
		if !slices.ContainsFunc(ud.Contacts, func(c Contact) bool { return c.Device == d.Device }) {
			v.Quiet = append(v.Quiet, d.Device)
		}
	}
	slices.SortFunc(v.ContactRows, func(a, b contactRow) int {
		return cmp.Or(a.Installed.Compare(b.Installed), strings.Compare(a.Device, b.Device), strings.Compare(a.Destination, b.Destination))
	})
	for _, h := range series.hours {
		for i, dest := range series.dests {
			if b := h.bytes[i]; b > 0 || h.conns[i] > 0 {
				v.VolumeRows = append(v.VolumeRows, volumeRow{Hour: h.start, Destination: dest, Bytes: b, Connections: h.conns[i], Devices: h.devices[i], Above: series.hasBaseline && b > series.baseline})
			}
		}
	}
	v.Plot = plotInfo{Contacts: len(ud.Contacts) > 0, Volume: len(series.hours) > 0,
		ContactsURL: "/ui/updates/" + ud.Summary.Digest + "/contacts.svg", VolumeURL: "/ui/updates/" + ud.Summary.Digest + "/volume.svg",
		ContactRowsCut: max(0, len(v.ContactRows)-maxTableRows), VolumeRowsCut: max(0, len(v.VolumeRows)-maxTableRows)}
	v.ContactRows = v.ContactRows[:min(len(v.ContactRows), maxTableRows)]
	v.VolumeRows = v.VolumeRows[:min(len(v.VolumeRows), maxTableRows)]
	title := ud.Summary.Digest
	if ud.Summary.Product != "" {
		title = ud.Summary.Product + " " + ud.Summary.Version
	}
	c.render(w, r, http.StatusOK, "update", view{Title: title, Nav: "updates", Session: s, Data: v})
	return nil
}

type plotInfo struct {
	Contacts, Volume              bool
	ContactsURL, VolumeURL        string
	ContactRowsCut, VolumeRowsCut int
}

func (c *Console) contactsPlot(w http.ResponseWriter, r *http.Request, s *session) error {
	ud, err := c.updateDetail(r)
	if err != nil {
		return err
	}
	b, err := contactsSVG(ud)
	if err != nil {
		return err
	}
	writeSVG(w, b)
	return nil
}

func (c *Console) volumePlot(w http.ResponseWriter, r *http.Request, s *session) error {
	ud, err := c.updateDetail(r)
	if err != nil {
		return err
	}
	b, err := volumeSVG(ud)
	if err != nil {
		return err
	}
	writeSVG(w, b)
	return nil
}

func writeSVG(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Content-Security-Policy", plotCSP)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// --- findings ----------------------------------------------------------------------

type findingsView struct {
	FindingPage
	Query FindingQuery
	Pager pager
	Links links
}

var severities = []string{"quarantined", "suspicious"}

func (c *Console) findingsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	q, err := params(r, "code", "severity", "class", "update", "device", "page")
	if err != nil {
		return err
	}
	fq := FindingQuery{Code: q.Get("code"), Severity: q.Get("severity"), Class: q.Get("class"), Update: q.Get("update"), Device: q.Get("device")}
	if err := oneOf("Severity", fq.Severity, severities...); err != nil {
		return err
	}
	if fq.Update != "" && !validDigest(fq.Update) {
		return badRequest("Update %q: want sha256: and 64 lowercase hexadecimal digits.", fq.Update)
	}
	var n int
	if fq.Page, n, err = pageParam(q, PageSize); err != nil {
		return err
	}
	p, err := c.data.Findings(r.Context(), fq)
	if err != nil {
		return err
	}
	l := links{r.URL}
	c.render(w, r, http.StatusOK, "findings", view{Title: "Findings", Nav: "findings", Session: s,
		Data: findingsView{FindingPage: p, Query: fq, Pager: newPager(l, n, PageSize, p.Total), Links: l}})
	return nil
}

// --- devices -----------------------------------------------------------------------

type devicesView struct {
	DevicePage
	Query DeviceQuery
	Pager pager
	Links links
}

func (c *Console) devicesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	q, err := params(r, "q", "class", "segment", "affected", "page")
	if err != nil {
		return err
	}
	dq := DeviceQuery{Search: strings.TrimSpace(q.Get("q")), Class: q.Get("class"), Segment: q.Get("segment"), Affected: q.Get("affected") == "1"}
	if err := oneOf("Affected", q.Get("affected"), "1", "0"); err != nil {
		return err
	}
	var n int
	if dq.Page, n, err = pageParam(q, PageSize); err != nil {
		return err
	}
	p, err := c.data.Devices(r.Context(), dq)
	if err != nil {
		return err
	}
	l := links{r.URL}
	c.render(w, r, http.StatusOK, "devices", view{Title: "Devices", Nav: "devices", Session: s,
		Data: devicesView{DevicePage: p, Query: dq, Pager: newPager(l, n, PageSize, p.Total), Links: l}})
	return nil
}

type deviceView struct {
	DeviceDetail
	Verdicts []entryView
}

func (c *Console) devicePage(w http.ResponseWriter, r *http.Request, s *session) error {
	q, err := params(r, "name")
	if err != nil {
		return err
	}
	name := q.Get("name")
	if name == "" {
		return badRequest("Name the device: /ui/device?name=DEVICE.")
	}
	dd, err := c.data.Device(r.Context(), name)
	if err != nil {
		return err
	}
	v := deviceView{DeviceDetail: dd}
	for _, e := range dd.Entries {
		v.Verdicts = append(v.Verdicts, entryView{Entry: e, Verdict: readVerdict(e.Envelope, nil)})
	}
	c.render(w, r, http.StatusOK, "device", view{Title: dd.Device.Name, Nav: "devices", Session: s, Data: v})
	return nil
}

// --- log and evidence ------------------------------------------------------------

func (c *Console) logPage(w http.ResponseWriter, r *http.Request, s *session) error {
	q, err := params(r, "artifact", "device", "page")
	if err != nil {
		return err
	}
	lq := LogQuery{Artifact: q.Get("artifact"), Device: q.Get("device")}
	if lq.Artifact != "" && !validDigest(lq.Artifact) {
		return badRequest("Artifact %q: want sha256: and 64 lowercase hexadecimal digits.", lq.Artifact)
	}
	var n int
	if lq.Page, n, err = pageParam(q, LogPageSize); err != nil {
		return err
	}
	lp, err := c.data.LogPage(r.Context(), lq)
	if err != nil {
		return err
	}
	v := checkLog(lp)
	l := links{r.URL}
	v.Query, v.Links, v.Pager = lq, l, newPager(l, n, LogPageSize, lp.Total)
	c.render(w, r, http.StatusOK, "log", view{Title: "Log and evidence", Nav: "log", Session: s, Data: v})
	return nil
}

// parseFormTime reads a form's time field: RFC 3339, or the
// datetime-local form YYYY-MM-DDTHH:MM[:SS] taken as UTC.
func parseFormTime(name, v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badRequest("%s %q: want a date and time such as 2026-01-20T00:00 (UTC).", name, v)
}

func (c *Console) export(w http.ResponseWriter, r *http.Request, s *session) error {
	f := r.PostForm
	var eq ExportQuery
	var err error
	if eq.Since, err = parseFormTime("Since", f.Get("since")); err != nil {
		return err
	}
	if eq.Until, err = parseFormTime("Until", f.Get("until")); err != nil {
		return err
	}
	if !eq.Since.IsZero() && !eq.Until.IsZero() && eq.Until.Before(eq.Since) {
		return badRequest("Until is before since.")
	}
	eq.Artifact, eq.Device = strings.TrimSpace(f.Get("artifact")), strings.TrimSpace(f.Get("device"))
	if eq.Artifact != "" && !validDigest(eq.Artifact) {
		return badRequest("Artifact %q: want sha256: and 64 lowercase hexadecimal digits.", eq.Artifact)
	}
	if len(eq.Device) > maxParam {
		return badRequest("Device is longer than %d bytes.", maxParam)
	}
	pack, err := c.data.Export(r.Context(), eq)
	if err != nil {
		return err
	}
	defer pack.Close()
	target := fmt.Sprintf("since=%s until=%s artifact=%s device=%s", fmtTime(eq.Since), fmtTime(eq.Until), eq.Artifact, eq.Device)
	if err := c.audit(w, r, s.p, "console export", target, fmt.Sprintf("%d entries, tree size %d", pack.Entries, pack.TreeSize)); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/gzip")
	h.Set("Content-Length", strconv.FormatInt(pack.Size, 10))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="wardgate-evidence-%d.tar.gz"`, pack.TreeSize))
	h.Set("X-Wardgate-Tree-Size", strconv.FormatUint(pack.TreeSize, 10))
	h.Set("X-Wardgate-Entries", strconv.FormatUint(pack.Entries, 10))
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 64<<10)
	for {
		n, rerr := pack.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the client went away; the response has started
			}
		}
		if rerr != nil {
			return nil
		}
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (c *Console) publicKey(w http.ResponseWriter, r *http.Request, s *session) error {
	lp, err := c.data.LogPage(r.Context(), LogQuery{})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="wardgate-log.pub"`)
	_, _ = w.Write(lp.Checkpoint.PublicKey)
	return nil
}
