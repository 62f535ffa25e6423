package console_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The browser test runs the real thing: `wardgate serve --demo` (the
// binary, built here or named by $WARDGATE), headless Chromium driven
// with chromedp, and `wardgate attest verify` on the pack the browser
// downloaded. Full-page screenshots of every page go to
// $WARDGATE_SCREENSHOTS (make console-screenshots points it at
// docs/console), else to the test's temporary directory.

// chromiumPath is Debian's chromium package (.ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

func wardgateBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WARDGATE"); p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join("..", p) // relative to the repository, as make passes it
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	bin := filepath.Join(t.TempDir(), "wardgate")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/wardgate")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// demoServer is a running `wardgate serve --demo`.
type demoServer struct {
	url, token, digest, state string
}

var (
	bannerURL   = regexp.MustCompile(`open\s+(http://\S+)/ui/updates/(sha256:[0-9a-f]{64})`)
	bannerToken = regexp.MustCompile(`auditor token (wgt_\S+)`)
	bannerState = regexp.MustCompile(`loading the story into (\S+)`)
)

func startDemo(t *testing.T, bin string) demoServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "serve", "--demo", "--demo-fixtures", "../fixtures", "--listen", "127.0.0.1:0", "--log-level", "warn")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := cmd.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("wardgate serve --demo: %v\n%s", err, stderr.String())
		}
	})
	var d demoServer
	out := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		var all strings.Builder
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Press Ctrl-C") {
				out <- all.String()
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		out <- all.String()
	}()
	var banner string
	select {
	case banner = <-out:
	case <-time.After(8 * time.Minute):
		t.Fatalf("wardgate serve --demo did not load the story in 8 minutes\n%s", stderr.String())
	}
	m, tok, st := bannerURL.FindStringSubmatch(banner), bannerToken.FindStringSubmatch(banner), bannerState.FindStringSubmatch(banner)
	if m == nil || tok == nil || st == nil {
		t.Fatalf("wardgate serve --demo printed no console URL and token:\n%s\n%s", banner, stderr.String())
	}
	d.url, d.digest, d.token, d.state = m[1], m[2], tok[1], st[1]
	return d
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv("WARDGATE_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no browser: %s is missing (apt-get install -y chromium; .ci/run does)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return ctx
}

// within runs actions with a deadline.
func within(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

type contactRow struct {
	Device, Destination, Installed, First, After string
}

func TestBrowserDemoStory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser test loads the demo story")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no browser: %s is missing (apt-get install -y chromium; .ci/run does)", chromiumPath)
	}
	bin := wardgateBinary(t)
	demo := startDemo(t, bin)
	shots := screenshotDir(t)
	ctx := newBrowser(t)
	update := demo.url + "/ui/updates/" + demo.digest

	// Times in the viewer's zone: the browser is in New York.
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "America/New_York"}); err != nil {
		t.Fatal(err)
	}

	// No session: the update's URL leads to the sign-in form, which comes
	// back to it.
	within(t, ctx, "open the update without a session", chromedp.Navigate(update), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := eval[string](t, ctx, "location.pathname"); loc != "/ui/signin" {
		t.Fatalf("without a session the update page went to %s, want /ui/signin", loc)
	}
	shoot(t, ctx, shots, "signin")
	within(t, ctx, "sign in", chromedp.SendKeys(chromedp.ID("token"), demo.token), chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("contacts-table")))
	if loc := eval[string](t, ctx, "location.href"); loc != update {
		t.Fatalf("after sign-in the browser is on %s, want %s", loc, update)
	}

	// The update is quarantined: a word and an icon.
	banner := eval[string](t, ctx, `document.querySelector(".banner.s-quarantined").innerText`)
	if !strings.Contains(banner, "Quarantined.") || eval[int](t, ctx, `document.querySelectorAll(".banner.s-quarantined svg").length`) != 1 {
		t.Errorf("no quarantined banner with its icon: %q", banner)
	}
	// The plot's table: the pilot pumps reach the code-hosting site after
	// installing the update.
	rows := eval[[]contactRow](t, ctx, `[...document.querySelectorAll("#contacts-table tbody tr")].map(r => ({
		Device: r.dataset.device, Destination: r.dataset.destination,
		Installed: r.cells[2].querySelector("time").getAttribute("datetime"),
		First: r.cells[4].querySelector("time").getAttribute("datetime"), After: r.cells[5].innerText}))`)
	var pumps []string
	for _, r := range rows {
		if r.Destination != "raw.githubusercontent.com" {
			continue
		}
		inst, err1 := time.Parse(time.RFC3339, r.Installed)
		first, err2 := time.Parse(time.RFC3339, r.First)
		if err1 != nil || err2 != nil || !first.After(inst) || !strings.HasSuffix(r.After, "later") {
			t.Errorf("%s: first contact %s is not after the install %s (%q)", r.Device, r.First, r.Installed, r.After)
		}
		pumps = append(pumps, r.Device)
	}
	if want := []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-02", "HOSP-IOT-PUMP-03", "HOSP-IOT-PUMP-04"}; strings.Join(pumps, ",") != strings.Join(want, ",") {
		t.Errorf("installers contacting raw.githubusercontent.com: %v, want %v", pumps, want)
	}
	// Times are shown in New York time, with UTC on hover.
	tm := eval[[]string](t, ctx, `(e => [e.innerText, e.title, e.dataset.local || ""])(document.querySelector("#contacts-table time"))`)
	if tm[2] != "true" || strings.Contains(tm[0], "UTC") || !strings.Contains(tm[1], "UTC") || !(strings.Contains(tm[0], "EST") || strings.Contains(tm[0], "GMT-5")) {
		t.Errorf("time shown as %q (title %q, localised %q), want New York time with UTC in the title", tm[0], tm[1], tm[2])
	}
	// Both plots drew, as images of this origin.
	// An image may still be loading when the page is (the plots are
	// rendered on request): wait up to 10 s for each.
	for _, img := range []string{"contacts.svg", "volume.svg"} {
		w := 0
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if w = eval[int](t, ctx, fmt.Sprintf(`document.querySelector('img[src$="%s"]').naturalWidth`, img)); w >= 300 || time.Now().After(deadline) {
				break
			}
		}
		if w < 300 {
			t.Errorf("plot %s: naturalWidth %d", img, w)
		}
	}
	if n := eval[int](t, ctx, `document.querySelectorAll("#volume-table tbody tr").length`); n == 0 {
		t.Error("the volume plot's table is empty")
	}
	shoot(t, ctx, shots, "update")

	// The contacts plot itself names the devices and the destination.
	within(t, ctx, "open the contacts plot", chromedp.Navigate(update+"/contacts.svg"))
	svg := eval[string](t, ctx, "document.documentElement.outerHTML")
	for _, want := range []string{"HOSP-IOT-PUMP-01", "HOSP-IOT-PUMP-04", "raw.githubusercontent.com", "installed the update"} {
		if !strings.Contains(svg, want) {
			t.Errorf("contacts plot lacks %q", want)
		}
	}
	shoot(t, ctx, shots, "plot-contacts")
	within(t, ctx, "open the volume plot", chromedp.Navigate(update+"/volume.svg"))
	shoot(t, ctx, shots, "plot-volume")

	// Follow a device link from the table.
	within(t, ctx, "follow a device link", chromedp.Navigate(update), chromedp.WaitVisible(chromedp.ID("contacts-table")),
		chromedp.Click(chromedp.CSS(`#contacts-table a[href^="/ui/device"]`)), chromedp.WaitVisible(chromedp.ID("installs")))
	if h := eval[string](t, ctx, `document.querySelector("h1").innerText`); h != "HOSP-IOT-PUMP-01" {
		t.Errorf("device page title %q", h)
	}
	if !strings.Contains(eval[string](t, ctx, `document.querySelector("main").innerText`), demo.digest[:19]) {
		t.Errorf("the device page does not show the update %s among its installs", demo.digest)
	}
	shoot(t, ctx, shots, "device")

	// The lists, filtered through their URLs.
	within(t, ctx, "updates list", chromedp.Navigate(demo.url+"/ui/updates?state=quarantined"), chromedp.WaitVisible(chromedp.CSS("table")))
	if n := eval[int](t, ctx, `document.querySelectorAll("tbody tr").length`); n < 1 {
		t.Error("no quarantined update listed")
	}
	within(t, ctx, "updates list", chromedp.Navigate(demo.url+"/ui/updates"), chromedp.WaitVisible(chromedp.CSS("table")))
	if !strings.Contains(eval[string](t, ctx, `document.querySelector("tbody").innerText`), "quarantined") {
		t.Error("the updates list shows no quarantined update")
	}
	shoot(t, ctx, shots, "updates")
	// Keyboard: the first Tab reaches the skip link, whose focus is visible.
	within(t, ctx, "tab", chromedp.KeyEvent("\t"))
	if f := eval[[]string](t, ctx, `[document.activeElement.className, getComputedStyle(document.activeElement).outlineStyle]`); f[0] != "skip" || f[1] == "none" {
		t.Errorf("first Tab focused %q with outline %q, want the skip link with a visible outline", f[0], f[1])
	}
	within(t, ctx, "findings", chromedp.Navigate(demo.url+"/ui/findings"), chromedp.WaitVisible(chromedp.CSS("table")))
	shoot(t, ctx, shots, "findings")
	within(t, ctx, "devices", chromedp.Navigate(demo.url+"/ui/devices"), chromedp.WaitVisible(chromedp.CSS("table")))
	shoot(t, ctx, shots, "devices")

	// On a tablet the page does not scroll sideways (wide tables scroll in
	// their own box).
	within(t, ctx, "tablet", chromedp.EmulateViewport(768, 1024), chromedp.Navigate(update), chromedp.WaitVisible(chromedp.ID("contacts-table")))
	if w := eval[int](t, ctx, "document.documentElement.scrollWidth"); w > 768 {
		t.Errorf("at 768 px wide the page is %d px wide", w)
	}
	shoot(t, ctx, shots, "update-tablet")
	within(t, ctx, "desktop", chromedp.EmulateViewport(1280, 800))

	// The log: checkpoint and every entry's inclusion proof checked.
	within(t, ctx, "log", chromedp.Navigate(demo.url+"/ui/log"), chromedp.WaitVisible(chromedp.ID("log-table")))
	if s := eval[string](t, ctx, `document.querySelector("#checkpoint + p").innerText`); !strings.Contains(s, "signature verified") {
		t.Errorf("checkpoint: %q", s)
	}
	ok, bad := eval[int](t, ctx, `document.querySelectorAll(".proof-ok").length`), eval[int](t, ctx, `document.querySelectorAll(".proof-bad").length`)
	if ok == 0 || bad != 0 {
		t.Errorf("inclusion proofs: %d verified, %d failed", ok, bad)
	}
	shoot(t, ctx, shots, "log")

	// Export an evidence pack through the form and verify it offline.
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatal(err)
	}
	within(t, ctx, "export", chromedp.Click(chromedp.CSS(`form[action="/ui/log/export"] button`)))
	pack := waitDownload(t, dl)
	out, err := exec.CommandContext(t.Context(), bin, "attest", "verify", pack, "--key", filepath.Join(demo.state, "signing.pub")).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "INTACT") {
		t.Fatalf("wardgate attest verify %s: %v\n%s", filepath.Base(pack), err, out)
	}
	t.Logf("exported %s: %s", filepath.Base(pack), strings.TrimSpace(string(out)))
}

func waitDownload(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".tar.gz") {
				return filepath.Join(dir, e.Name())
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("the evidence pack was not downloaded within a minute")
	return ""
}
