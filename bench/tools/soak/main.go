// Command soak drives one wardgate server on the loopback interface with a
// bounded mix of work for a set time, samples the server every second and
// tabulates what it saw:
//
//   - admissions at a fixed rate from a few workers (POST /v1/admissions);
//   - telemetry: a small batch of new events every interval (a sensor);
//   - evidence exports of the last minute every interval (an auditor);
//   - hostile requests in a loop: no token, a wrong role, a bad scheme,
//     oversized, malformed and duplicate-key JSON, path tricks, unknown
//     routes, a batch in the wrong format, an upload with too many parts,
//     a body that stops, and idle keep-alive connections held open;
//   - every second: the server's RSS and open file descriptors (from
//     /proc/PID), its goroutines (from /metrics), and the admissions
//     answered, their p50/p99/max latency and the errors of that second.
//
// It writes the table (-o, TSV) and prints one line every -print seconds
// and a summary comparing the first and the last minute. It exits 1 when an
// admission failed or was denied, a request got a 5xx, an admission's
// latency passed -budget, or file descriptors or goroutines grew by more
// than the allowance between the first and the last minute.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	url, pid, digest, out, telemetry                     string
	admitTok, sensorTok, auditorTok, ciTok               string
	duration, telemetryEvery, exportEvery, hostileEvery  time.Duration
	budget                                               time.Duration
	rate, workers, idleConns, printEvery, telemetryLines int
	fdAllowance, goroutineAllowance                      int
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "http://127.0.0.1:8080", "server base URL (loopback only)")
	flag.StringVar(&c.pid, "pid", "", "the server's process ID (for RSS and file descriptors)")
	flag.StringVar(&c.digest, "digest", "", "an evaluated update's digest")
	flag.StringVar(&c.admitTok, "update-server-token", "", "file holding an update-server token")
	flag.StringVar(&c.sensorTok, "sensor-token", "", "file holding a sensor token")
	flag.StringVar(&c.auditorTok, "auditor-token", "", "file holding an auditor token")
	flag.StringVar(&c.ciTok, "ci-token", "", "file holding a ci token")
	flag.StringVar(&c.telemetry, "telemetry", "fixtures/fleet/testdata/defender.jsonl", "Defender JSON Lines to draw events from")
	flag.DurationVar(&c.duration, "duration", time.Hour, "how long to run")
	flag.IntVar(&c.rate, "rate", 200, "admissions per second")
	flag.IntVar(&c.workers, "workers", 64, "admission workers")
	flag.DurationVar(&c.telemetryEvery, "telemetry-every", time.Second, "a telemetry batch this often")
	flag.IntVar(&c.telemetryLines, "telemetry-lines", 10, "events per telemetry batch")
	flag.DurationVar(&c.exportEvery, "export-every", time.Minute, "an evidence export of the last minute this often")
	flag.DurationVar(&c.hostileEvery, "hostile-every", 100*time.Millisecond, "a hostile request this often")
	flag.IntVar(&c.idleConns, "idle-conns", 64, "idle keep-alive connections held open")
	flag.DurationVar(&c.budget, "budget", 2*time.Second, "the admission budget: no admission may take longer")
	flag.IntVar(&c.printEvery, "print", 60, "print a row every this many seconds")
	flag.IntVar(&c.fdAllowance, "fd-allowance", 32, "descriptors other than sockets the second half of the run may hold above the first (on average)")
	flag.IntVar(&c.goroutineAllowance, "goroutine-allowance", 64, "goroutines less sockets the second half may hold above the first (on average)")
	flag.StringVar(&c.out, "o", "", "write the per-second table (TSV) here")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// sample is one second of the run.
type sample struct {
	T               int
	Admissions      int
	P50, P99, Max   time.Duration
	AdmitErrors     int
	RSS             int64 // bytes
	FDs, Goroutines int
	// Sockets are the descriptors that are connections (and the
	// listener); CloseWait those of them the client has closed and the
	// server has not.
	Sockets, CloseWait   int
	Telemetry, Exports   int
	Hostile, ServerError int // hostile requests answered; 5xx seen anywhere
}

// counters are filled by the workers and drained every second.
type counters struct {
	mu        sync.Mutex
	lat       []time.Duration
	admitErrs int
	firstErr  string
	telemetry atomic.Int64
	exports   atomic.Int64
	hostile   atomic.Int64
	fivexx    atomic.Int64
	last5xx   atomic.Value
}

func (k *counters) admitted(d time.Duration, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.admitErrs++
		if k.firstErr == "" {
			k.firstErr = err.Error()
		}
		return
	}
	k.lat = append(k.lat, d)
}

func readToken(p string) (string, error) {
	b, err := os.ReadFile(p)
	return strings.TrimSpace(string(b)), err
}

func loopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%s is not a loopback address; soak only drives a local server", u.Hostname())
	}
	return nil
}

func run(ctx context.Context, c config) (bool, error) {
	if err := loopback(c.url); err != nil {
		return false, err
	}
	if c.digest == "" || c.pid == "" || c.rate <= 0 || c.workers <= 0 {
		return false, errors.New("-digest, -pid, a positive -rate and -workers are required")
	}
	toks := map[string]string{}
	for role, p := range map[string]string{"update-server": c.admitTok, "sensor": c.sensorTok, "auditor": c.auditorTok, "ci": c.ciTok} {
		t, err := readToken(p)
		if err != nil {
			return false, fmt.Errorf("%s token: %w", role, err)
		}
		toks[role] = t
	}
	tel, err := os.ReadFile(c.telemetry)
	if err != nil {
		return false, err
	}
	lines := bytes.SplitAfter(bytes.TrimSpace(tel), []byte("\n"))
	base := strings.TrimRight(c.url, "/")
	tr := &http.Transport{MaxIdleConns: c.workers + 8, MaxIdleConnsPerHost: c.workers + 8, IdleConnTimeout: 20 * time.Second, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	k := &counters{}
	var wg sync.WaitGroup
	note5xx := func(what string, status int, body []byte) {
		if status >= 500 {
			k.fivexx.Add(1)
			k.last5xx.Store(fmt.Sprintf("%s: %d %s", what, status, bytes.TrimSpace(body)))
		}
	}
	do := func(req *http.Request) (int, []byte, error) {
		res, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
		return res.StatusCode, b, err
	}

	// Admissions at the rate, spread over the workers, from 10,000 devices.
	ticks := make(chan struct{}, c.workers)
	wg.Go(func() {
		t := time.NewTicker(time.Second / time.Duration(c.rate))
		defer t.Stop()
		defer close(ticks)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case ticks <- struct{}{}:
				default: // every worker busy: the server is behind; counted as lost rate, not queued
				}
			}
		}
	})
	var seq atomic.Int64
	for range c.workers {
		wg.Go(func() {
			var resp struct {
				Allow    bool `json:"allow"`
				Decision struct {
					Violations []struct {
						Code, Message string
					} `json:"violations"`
				} `json:"decision"`
			}
			for range ticks {
				n := seq.Add(1)
				body := fmt.Sprintf(`{"digest":%q,"device":{"id":"SOAK-PUMP-%d","class":"infusion-pump","installedVersion":"2.3.0"}}`, c.digest, n%10000)
				req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/admissions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+toks["update-server"])
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				st, b, err := do(req)
				d := time.Since(start)
				if ctx.Err() != nil {
					return
				}
				switch {
				case err != nil:
					k.admitted(d, err)
				case st != 200:
					note5xx("admission", st, b)
					k.admitted(d, fmt.Errorf("status %d: %s", st, bytes.TrimSpace(b)))
				case json.Unmarshal(b, &resp) != nil:
					k.admitted(d, fmt.Errorf("answer: %s", b))
				case !resp.Allow:
					k.admitted(d, fmt.Errorf("denied: %+v", resp.Decision.Violations))
				default:
					k.admitted(d, nil)
				}
			}
		})
	}

	// Telemetry: the fixture's lines, moved to now, a new batch each time.
	wg.Go(func() {
		t := time.NewTicker(c.telemetryEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var buf bytes.Buffer
			now := time.Now().UTC()
			for j := range c.telemetryLines {
				l := string(lines[(i*c.telemetryLines+j)%len(lines)])
				if a, b, ok := strings.Cut(l, `"Timestamp":"`); ok {
					_, rest, _ := strings.Cut(b, `"`)
					l = a + `"Timestamp":"` + now.Add(time.Duration(j)*time.Millisecond).Format(time.RFC3339Nano) + `"` + rest
				}
				buf.WriteString(strings.TrimRight(l, "\n") + "\n")
			}
			req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/telemetry", &buf)
			req.Header.Set("Authorization", "Bearer "+toks["sensor"])
			req.Header.Set("Content-Type", "application/x-ndjson")
			st, b, err := do(req)
			if ctx.Err() != nil {
				return
			}
			note5xx("telemetry", st, b)
			if err == nil && st == 200 {
				k.telemetry.Add(1)
			}
		}
	})

	// Exports of the last minute.
	wg.Go(func() {
		t := time.NewTicker(c.exportEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
			req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/evidence?since="+since, nil)
			req.Header.Set("Authorization", "Bearer "+toks["auditor"])
			st, b, err := do(req)
			if ctx.Err() != nil {
				return
			}
			note5xx("export", st, b)
			if err == nil && st == 200 {
				k.exports.Add(1)
			}
		}
	})

	// Hostile requests and idle connections.
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	hostile := hostileRequests(base, toks)
	hsem := make(chan struct{}, 8)
	var hwg sync.WaitGroup
	defer hwg.Wait()
	wg.Go(func() {
		var idle []net.Conn
		defer func() {
			for _, c := range idle {
				c.Close()
			}
		}()
		t := time.NewTicker(c.hostileEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// Keep c.idleConns idle keep-alive connections open; the server
			// closes them after its idle timeout and they are opened again.
			for j := 0; j < len(idle); j++ {
				idle[j].SetReadDeadline(time.Now().Add(time.Millisecond))
				if _, err := idle[j].Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					idle[j].Close()
					idle = slices.Delete(idle, j, j+1)
					j--
				}
			}
			for len(idle) < c.idleConns {
				conn, err := net.DialTimeout("tcp", host, time.Second)
				if err != nil {
					break
				}
				fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				res, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					conn.Close()
					break
				}
				res.Body.Close()
				idle = append(idle, conn)
			}
			// Each hostile request in its own goroutine (a body that stops
			// takes the server's read timeout), at most 8 at once.
			select {
			case hsem <- struct{}{}:
			default:
				continue
			}
			h := hostile[i%len(hostile)]
			hwg.Go(func() {
				defer func() { <-hsem }()
				st, b, err := h.send(ctx, client, host)
				if ctx.Err() != nil || err != nil {
					return
				}
				note5xx("hostile "+h.name, st, b)
				if st/100 == 4 || (st == 503 && h.busyOK) {
					k.hostile.Add(1)
				} else if st < 500 {
					k.fivexx.Add(1) // not refused: count as a failure too
					k.last5xx.Store(fmt.Sprintf("hostile %s: answered %d %s", h.name, st, bytes.TrimSpace(b)))
				}
			})
		}
	})

	// Sampling.
	var samples []sample
	var out *bufio.Writer
	if c.out != "" {
		if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
			return false, err
		}
		f, err := os.Create(c.out)
		if err != nil {
			return false, err
		}
		defer f.Close()
		out = bufio.NewWriter(f)
		defer out.Flush()
	}
	header := "t\tadmissions\tp50_ms\tp99_ms\tmax_ms\tadmit_errors\trss_mb\tfds\tsockets\tclose_wait\tgoroutines\ttelemetry\texports\thostile_refused\t5xx"
	if out != nil {
		fmt.Fprintln(out, header)
	}
	fmt.Println(header)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prevTel, prevExp, prevHost, prev5 int64
	for sec := 1; ; sec++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		k.mu.Lock()
		lat, errs := k.lat, k.admitErrs
		k.lat, k.admitErrs = nil, 0
		k.mu.Unlock()
		slices.Sort(lat)
		s := sample{T: sec, Admissions: len(lat), AdmitErrors: errs}
		if len(lat) > 0 {
			s.P50, s.P99, s.Max = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)], lat[len(lat)-1]
		}
		s.RSS, s.FDs, s.Sockets, s.CloseWait = procStats(c.pid)
		s.Goroutines = goroutines(ctx, client, base)
		tel, exp, hos, five := k.telemetry.Load(), k.exports.Load(), k.hostile.Load(), k.fivexx.Load()
		s.Telemetry, s.Exports, s.Hostile, s.ServerError = int(tel-prevTel), int(exp-prevExp), int(hos-prevHost), int(five-prev5)
		prevTel, prevExp, prevHost, prev5 = tel, exp, hos, five
		samples = append(samples, s)
		row := fmt.Sprintf("%d\t%d\t%.2f\t%.2f\t%.2f\t%d\t%.1f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d", s.T, s.Admissions, ms(s.P50), ms(s.P99), ms(s.Max), s.AdmitErrors,
			float64(s.RSS)/(1<<20), s.FDs, s.Sockets, s.CloseWait, s.Goroutines, s.Telemetry, s.Exports, s.Hostile, s.ServerError)
		if out != nil {
			fmt.Fprintln(out, row)
		}
		if c.printEvery > 0 && sec%c.printEvery == 0 {
			fmt.Println(row)
		}
	}
	cancel()
	wg.Wait()
	return summarize(c, samples, k, time.Since(start)), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// procStats reads the server's resident memory, its open descriptors,
// how many of them are sockets, and how many of those are TCP connections
// in CLOSE_WAIT (the client closed them, the server has not).
func procStats(pid string) (rss int64, fds, sockets, closeWait int) {
	if b, err := os.ReadFile("/proc/" + pid + "/status"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					rss = n << 10
				}
			}
		}
	}
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return rss, 0, 0, 0
	}
	fds = len(ents)
	// The TCP table (of the server's network namespace) gives each
	// socket's state by inode; 08 is CLOSE_WAIT.
	waiting := map[string]bool{}
	for _, tab := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + pid + "/net/" + tab)
		if err != nil {
			continue
		}
		for l := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 9 && f[3] == "08" {
				waiting[f[9]] = true
			}
		}
	}
	for _, e := range ents {
		link, err := os.Readlink("/proc/" + pid + "/fd/" + e.Name())
		if ino, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			sockets++
			if waiting[strings.TrimSuffix(ino, "]")] {
				closeWait++
			}
		}
	}
	return rss, fds, sockets, closeWait
}

func goroutines(ctx context.Context, client *http.Client, base string) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	res, err := client.Do(req)
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return -1
}

// window averages the samples of [from, to) seconds.
type window struct {
	adm, rss, fds, socks, closeWait, gor float64
	p99, max                             time.Duration
}

func avg(ss []sample) window {
	var w window
	if len(ss) == 0 {
		return w
	}
	var p99s []time.Duration
	for _, s := range ss {
		w.adm += float64(s.Admissions)
		w.rss += float64(s.RSS)
		w.fds += float64(s.FDs)
		w.socks += float64(s.Sockets)
		w.closeWait += float64(s.CloseWait)
		w.gor += float64(s.Goroutines)
		p99s = append(p99s, s.P99)
		w.max = max(w.max, s.Max)
	}
	n := float64(len(ss))
	w.adm, w.rss, w.fds, w.socks, w.closeWait, w.gor = w.adm/n, w.rss/n, w.fds/n, w.socks/n, w.closeWait/n, w.gor/n
	slices.Sort(p99s)
	w.p99 = p99s[len(p99s)*99/100]
	return w
}

func summarize(c config, ss []sample, k *counters, took time.Duration) bool {
	if len(ss) == 0 {
		fmt.Println("no samples")
		return false
	}
	n := min(60, max(1, len(ss)/4))
	first, last := avg(ss[:n]), avg(ss[len(ss)-n:])
	var total, errs, five, hostile, tel, exp int
	var worst time.Duration
	over := 0
	for _, s := range ss {
		total += s.Admissions
		errs += s.AdmitErrors
		five += s.ServerError
		hostile += s.Hostile
		tel += s.Telemetry
		exp += s.Exports
		worst = max(worst, s.Max)
		if s.Max > c.budget {
			over++
		}
	}
	fmt.Printf("\n== soak: %s, %d admissions (%.0f/s), %d admission errors, %d telemetry batches, %d exports, %d hostile requests refused, %d 5xx\n",
		took.Round(time.Second), total, float64(total)/took.Seconds(), errs, tel, exp, hostile, five)
	fmt.Printf("%-16s %12s %10s %10s %10s %8s %11s\n", "", "admissions/s", "p99 ms", "max ms", "RSS MB", "fds", "goroutines")
	for _, r := range []struct {
		name string
		w    window
	}{{fmt.Sprintf("first %d s", n), first}, {fmt.Sprintf("last %d s", n), last}} {
		fmt.Printf("%-16s %12.0f %10.2f %10.2f %10.1f %8.0f %11.0f\n", r.name, r.w.adm, ms(r.w.p99), ms(r.w.max), r.w.rss/(1<<20), r.w.fds, r.w.gor)
	}
	fmt.Printf("slowest admission %.2f ms; seconds with an admission over the %s budget: %d\n", ms(worst), c.budget, over)
	ok := true
	if errs > 0 {
		fmt.Println("FAIL: admissions failed or were denied; first:", k.firstErr)
		ok = false
	}
	if five > 0 {
		fmt.Println("FAIL: 5xx answers (or hostile requests accepted); last:", k.last5xx.Load())
		ok = false
	}
	if over > 0 {
		fmt.Println("FAIL: admissions over the budget")
		ok = false
	}
	// Growth is judged on the two halves of the run, and only on what the
	// server holds of its own: every connection a client keeps open is a
	// socket (and a goroutine) of the server, and their number follows the
	// driver (its workers open more while latency is high), so descriptors
	// less sockets and goroutines less sockets must not grow, and no
	// connection the client closed may stay open (CLOSE_WAIT). The first
	// half includes the warm-up (pools filling), which an allowance covers.
	h := max(1, len(ss)/2)
	a, b := avg(ss[:h]), avg(ss[h:])
	fmt.Printf("%-16s %8s %8s %11s %12s %16s\n", "", "fds", "sockets", "close_wait", "fds-sockets", "goroutines-sock")
	for _, r := range []struct {
		name string
		w    window
	}{{fmt.Sprintf("first half %d s", h), a}, {fmt.Sprintf("second half %d s", len(ss)-h), b}} {
		fmt.Printf("%-16s %8.0f %8.0f %11.1f %12.1f %16.1f\n", r.name, r.w.fds, r.w.socks, r.w.closeWait, r.w.fds-r.w.socks, r.w.gor-r.w.socks)
	}
	if b.fds-b.socks > a.fds-a.socks+float64(c.fdAllowance) {
		fmt.Printf("FAIL: descriptors other than connections grew from %.0f to %.0f\n", a.fds-a.socks, b.fds-b.socks)
		ok = false
	}
	if b.closeWait > a.closeWait+1 {
		fmt.Printf("FAIL: connections the clients closed stay open (CLOSE_WAIT %.1f, first half %.1f)\n", b.closeWait, a.closeWait)
		ok = false
	}
	if b.gor-b.socks > a.gor-a.socks+float64(c.goroutineAllowance) {
		fmt.Printf("FAIL: goroutines beyond one a connection grew from %.0f to %.0f\n", a.gor-a.socks, b.gor-b.socks)
		ok = false
	}
	if ok {
		fmt.Println("ok")
	}
	return ok
}

// hostileRequest is one kind of request an attacker on the network sends.
type hostileRequest struct {
	name   string
	busyOK bool // a 503 busy is a correct refusal too
	send   func(ctx context.Context, client *http.Client, host string) (int, []byte, error)
}

func hostileRequests(base string, toks map[string]string) []hostileRequest {
	plain := func(name, method, path, auth, ctype string, body func() io.Reader, hdr ...string) hostileRequest {
		return hostileRequest{name: name, send: func(ctx context.Context, client *http.Client, _ string) (int, []byte, error) {
			var b io.Reader
			if body != nil {
				b = body()
			}
			req, err := http.NewRequestWithContext(ctx, method, base+path, b)
			if err != nil {
				return 0, nil, err
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			if ctype != "" {
				req.Header.Set("Content-Type", ctype)
			}
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			res, err := client.Do(req)
			if err != nil {
				return 0, nil, err
			}
			defer res.Body.Close()
			rb, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
			return res.StatusCode, rb, err
		}}
	}
	str := func(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }
	raw := func(name, request string) hostileRequest {
		return hostileRequest{name: name, send: func(ctx context.Context, _ *http.Client, host string) (int, []byte, error) {
			conn, err := net.DialTimeout("tcp", host, time.Second)
			if err != nil {
				return 0, nil, err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(15 * time.Second))
			io.WriteString(conn, request)
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return 0, nil, err
			}
			defer res.Body.Close()
			rb, err := io.ReadAll(res.Body)
			return res.StatusCode, rb, err
		}}
	}
	us, sensor, ci := "Bearer "+toks["update-server"], "Bearer "+toks["sensor"], "Bearer "+toks["ci"]
	manyParts := func() io.Reader {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for _, f := range []string{"vendor", "product", "version"} {
			mw.WriteField(f, "x")
		}
		for range 20 {
			w, _ := mw.CreateFormFile("signature", "s.sig")
			w.Write([]byte("MEUCIQ"))
		}
		mw.Close()
		return &buf
	}
	return []hostileRequest{
		plain("no token", "POST", "/v1/admissions", "", "application/json", str(`{}`)),
		plain("unknown token", "POST", "/v1/admissions", "Bearer wgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "application/json", str(`{}`)),
		plain("basic scheme", "GET", "/v1/findings", "Basic "+toks["auditor"], "", nil),
		plain("wrong role", "GET", "/v1/evidence", us, "", nil),
		plain("sensor admits", "POST", "/v1/admissions", sensor, "application/json", str(`{}`)),
		plain("oversized JSON", "POST", "/v1/admissions", us, "application/json", str(`{"digest":"`+strings.Repeat("a", 128<<10)+`"}`)),
		plain("malformed JSON", "POST", "/v1/admissions", us, "application/json", str(`{"digest":`)),
		plain("duplicate key", "POST", "/v1/admissions", us, "application/json", str(`{"device":{"id":"a","class":"b"},"device":{"id":"c","class":"d"}}`)),
		plain("case-folded key", "POST", "/v1/admissions", us, "application/json", str(`{"DIGEST":"sha256:x","device":{"id":"a","class":"b"}}`)),
		plain("control character", "POST", "/v1/admissions", us, "application/json", str(`{"digest":"sha256:`+strings.Repeat("0", 64)+`","device":{"id":"a\u001b[2J","class":"b"}}`)),
		plain("deep JSON", "POST", "/v1/admissions", us, "application/json", str(`{"device":{"id":`+strings.Repeat("[", 200)+strings.Repeat("]", 200)+`}}`)),
		plain("wrong content type", "POST", "/v1/admissions", us, "text/xml", str(`<x/>`)),
		plain("unknown route", "GET", "/v1/secrets", "", "", nil),
		plain("wrong method", "DELETE", "/v1/admissions", us, "", nil),
		plain("bad index", "GET", "/v1/log/entries/-1", "Bearer "+toks["auditor"], "", nil),
		plain("unknown parameter", "GET", "/v1/findings?x=1", "Bearer "+toks["auditor"], "", nil),
		plain("wrong telemetry format", "POST", "/v1/telemetry", sensor, "application/x-ndjson", str(`{"Timestamp":"2026-01-05T00:02:22Z","DeviceName":"HOSP-IOT-PUMP-03","RemoteIP":"52.168.117.170","RemotePort":443}`+"\n"),
			"X-Telemetry-Format", "zeek-tsv"),
		{name: "too many parts", busyOK: true, send: func(ctx context.Context, client *http.Client, _ string) (int, []byte, error) {
			body := manyParts()
			var buf bytes.Buffer
			io.Copy(&buf, body)
			// the boundary is in the body's first line
			line, _, _ := strings.Cut(buf.String(), "\r\n")
			req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/updates", &buf)
			req.Header.Set("Authorization", ci)
			req.Header.Set("Content-Type", "multipart/form-data; boundary="+strings.TrimPrefix(line, "--"))
			res, err := client.Do(req)
			if err != nil {
				return 0, nil, err
			}
			defer res.Body.Close()
			rb, err := io.ReadAll(res.Body)
			return res.StatusCode, rb, err
		}},
		raw("path trick", "GET /v1/log/entries/%2e%2e/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
		raw("double slash", "GET //v1/audit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
		raw("body stops", "POST /v1/admissions HTTP/1.1\r\nHost: x\r\nAuthorization: "+us+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"digest\":"),
		raw("lowercase bearer, no body", "POST /v1/admissions HTTP/1.1\r\nHost: x\r\nAuthorization: bearer "+toks["update-server"]+"\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
	}
}
