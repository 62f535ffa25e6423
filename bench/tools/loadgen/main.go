// Command loadgen drives POST /v1/admissions of a wardgate server on the
// loopback interface with a fixed number of requests from a fixed number
// of workers, within a time limit, and reports throughput and latency.
// It stops by itself: after -n requests or -duration, whichever is first.
// With -review it drives POST /v1/kubernetes/validate with that
// AdmissionReview instead (response.allowed counts as allowed); with -rate
// requests start at that many per second (open loop: latency counts from
// the scheduled start, so a stalled server is not hidden). Before the
// clock starts, -warm opens that many keep-alive connections (GET
// /healthz, concurrently), as an API server has its connections open
// before a burst: a run then measures reviews, not TLS handshakes.
// "connections" in the report counts those opened during the run.
//
//	loadgen -url http://127.0.0.1:8080 -token-file T -digest sha256:... -n 100000 -c 64
//	loadgen -url https://127.0.0.1:8443 -cacert ca.crt -servername wardgate-webhook.wardgate.svc -token-file T -review review.json -rate 200 -n 12000
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	url, tokenFile, digest, class, installed, devicePrefix, out string
	n, c, devices, warm                                         int
	duration                                                    time.Duration
	review, cacert, servername                                  string
	rate                                                        float64
}

// Result is the report, also written as JSON with -o.
type Result struct {
	Requests  int64   `json:"requests"`
	Allowed   int64   `json:"allowed"`
	Denied    int64   `json:"denied"`
	Errors    int64   `json:"errors"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	P50Ms     float64 `json:"p50Ms"`
	P90Ms     float64 `json:"p90Ms"`
	P99Ms     float64 `json:"p99Ms"`
	MaxMs     float64 `json:"maxMs"`
	Workers   int     `json:"workers"`
	// Connections is how many connections were opened during the run
	// (each a TCP and, over https, a TLS handshake), after -warm.
	Connections int64  `json:"connections"`
	FirstError  string `json:"firstError,omitempty"`
	// OKDevices lists the devices answered 2xx allow (-o only; for the
	// crash test).
	OKDevices []string `json:"okDevices,omitempty"`
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "http://127.0.0.1:8080", "server base URL (loopback only); several, comma-separated, spread the workers over them (replicas): worker i drives URL i mod N")
	flag.StringVar(&c.tokenFile, "token-file", "", "file holding an update-server token")
	flag.StringVar(&c.digest, "digest", "", "the evaluated update's digest")
	flag.StringVar(&c.class, "class", "infusion-pump", "device class")
	flag.StringVar(&c.installed, "installed", "2.3.0", "installed version")
	flag.StringVar(&c.devicePrefix, "device-prefix", "LOAD-PUMP-", "device IDs are PREFIX<n>")
	flag.IntVar(&c.devices, "devices", 10000, "distinct devices, cycled")
	flag.IntVar(&c.n, "n", 100000, "requests to send")
	flag.IntVar(&c.c, "c", 64, "concurrent workers (connections)")
	flag.DurationVar(&c.duration, "duration", 60*time.Second, "stop after this long even if -n is not reached")
	flag.StringVar(&c.out, "o", "", "also write the result as JSON to this file, with the devices answered allow")
	flag.StringVar(&c.review, "review", "", "post this AdmissionReview (a file) to /v1/kubernetes/validate instead of admissions")
	flag.Float64Var(&c.rate, "rate", 0, "start requests at this rate per second (0: as fast as the workers go)")
	flag.StringVar(&c.cacert, "cacert", "", "CA certificate (PEM) of an https -url")
	flag.StringVar(&c.servername, "servername", "", "TLS server name to verify (default: the -url host)")
	flag.IntVar(&c.warm, "warm", 0, "open this many keep-alive connections (GET /healthz, concurrently) before the clock starts (at most -c)")
	flag.Parse()
	res, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	fmt.Printf("requests %d in %.2fs: %.0f admissions/s; allowed %d, denied %d, errors %d\n", res.Requests, res.Seconds, res.PerSecond, res.Allowed, res.Denied, res.Errors)
	fmt.Printf("latency p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms (%d workers, %d connections opened during the run)\n", res.P50Ms, res.P90Ms, res.P99Ms, res.MaxMs, res.Workers, res.Connections)
	if res.FirstError != "" {
		fmt.Println("first error:", res.FirstError)
	}
	if c.out != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(c.out, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
	}
	if res.Errors > 0 {
		os.Exit(1)
	}
}

func loopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address; loadgen only drives a local server", host)
	}
	return nil
}

func run(c config) (*Result, error) {
	urls := strings.Split(c.url, ",")
	for _, u := range urls {
		if err := loopback(u); err != nil {
			return nil, err
		}
	}
	if (c.digest == "" && c.review == "") || c.tokenFile == "" {
		return nil, errors.New("-digest (or -review) and -token-file are required")
	}
	if c.rate < 0 {
		return nil, errors.New("-rate must not be negative")
	}
	if c.n <= 0 || c.c <= 0 || c.devices <= 0 {
		return nil, errors.New("-n, -c and -devices must be positive")
	}
	if c.warm < 0 || c.warm > c.c {
		return nil, errors.New("-warm must be between 0 and -c")
	}
	tb, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return nil, err
	}
	auth := "Bearer " + strings.TrimSpace(string(tb))
	bodies := make([][]byte, c.devices)
	for i := range bodies {
		bodies[i], _ = json.Marshal(map[string]any{"digest": c.digest, "device": map[string]string{"id": fmt.Sprintf("%s%d", c.devicePrefix, i), "class": c.class, "installedVersion": c.installed}})
	}
	var conns atomic.Int64
	dialer := &net.Dialer{}
	tr := &http.Transport{MaxIdleConns: c.c, MaxIdleConnsPerHost: c.c, MaxConnsPerHost: c.c, IdleConnTimeout: time.Minute, DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns.Add(1)
			return dialer.DialContext(ctx, network, addr)
		}}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", c.cacert)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: c.servername, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	route := "/v1/admissions"
	if c.review != "" {
		b, err := os.ReadFile(c.review)
		if err != nil {
			return nil, err
		}
		bodies = [][]byte{b}
		route = "/v1/kubernetes/validate"
	}
	endpoints := make([]string, len(urls))
	for i, u := range urls {
		endpoints[i] = strings.TrimRight(u, "/") + route
	}
	if err := warm(client, urls, c.warm); err != nil {
		return nil, err
	}
	conns.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()

	lat := make([]time.Duration, c.n)
	okDev := make([]bool, c.devices)
	var next, allowed, denied, errs atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c.c {
		endpoint := endpoints[w%len(endpoints)]
		wg.Go(func() {
			var resp struct {
				Allow    bool `json:"allow"`
				Response struct {
					Allowed bool `json:"allowed"`
				} `json:"response"`
			}
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(c.n) {
					return
				}
				dev := int(i % int64(len(bodies)))
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(bodies[dev]))
				req.Header.Set("Authorization", auth)
				req.Header.Set("Content-Type", "application/json")
				t0 := time.Now()
				if c.rate > 0 {
					t0 = start.Add(time.Duration(float64(i) / c.rate * float64(time.Second)))
					select {
					case <-time.After(time.Until(t0)):
					case <-ctx.Done():
						next.Add(-1)
						lat[i] = -1
						return
					}
				}
				r, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						next.Add(-1) // cut by the time limit: not a request answered
						lat[i] = -1
						return
					}
					lat[i] = -1
					fail(err)
					continue
				}
				b, err := io.ReadAll(r.Body)
				r.Body.Close()
				lat[i] = time.Since(t0)
				if err != nil || r.StatusCode != http.StatusOK {
					fail(fmt.Errorf("status %d: %s %v", r.StatusCode, bytes.TrimSpace(b), err))
					continue
				}
				if err := json.Unmarshal(b, &resp); err != nil {
					fail(err)
					continue
				}
				if resp.Allow || resp.Response.Allowed {
					allowed.Add(1)
					mu.Lock()
					okDev[dev] = true
					mu.Unlock()
				} else {
					denied.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	done := min(next.Load(), int64(c.n))
	var ls []time.Duration
	for _, d := range lat[:done] {
		if d > 0 {
			ls = append(ls, d)
		}
	}
	slices.Sort(ls)
	pct := func(p float64) float64 {
		if len(ls) == 0 {
			return 0
		}
		return float64(ls[min(len(ls)-1, int(p*float64(len(ls))))].Microseconds()) / 1000
	}
	res := &Result{Requests: allowed.Load() + denied.Load() + errs.Load(), Allowed: allowed.Load(), Denied: denied.Load(), Errors: errs.Load(),
		Seconds: elapsed.Seconds(), Workers: c.c, Connections: conns.Load(), P50Ms: pct(0.50), P90Ms: pct(0.90), P99Ms: pct(0.99), MaxMs: pct(1)}
	res.PerSecond = float64(res.Allowed+res.Denied) / elapsed.Seconds()
	if v := firstErr.Load(); v != nil {
		res.FirstError = v.(string)
	}
	if c.out != "" {
		for i, ok := range okDev {
			if ok {
				res.OKDevices = append(res.OKDevices, fmt.Sprintf("%s%d", c.devicePrefix, i))
			}
		}
	}
	return res, nil
}

// warm opens n connections, spread over urls: n concurrent GET /healthz,
// each holding its connection (its body not read) until all have their
// answer, so that none is reused; then they are left idle in client's
// pool.
func warm(client *http.Client, urls []string, n int) error {
	if n == 0 {
		return nil
	}
	var wg, answered sync.WaitGroup
	answered.Add(n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			u := strings.TrimRight(urls[i%len(urls)], "/") + "/healthz"
			r, err := client.Get(u)
			answered.Done()
			if err != nil {
				errs[i] = fmt.Errorf("warm-up: %w", err)
				return
			}
			answered.Wait()
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode != http.StatusOK {
				errs[i] = fmt.Errorf("warm-up: GET %s: status %d", u, r.StatusCode)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
