package server

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/gate"
)

// A handler that runs past the read deadline is still answered (issue
// 13, the soak's cancelled exports). net/http reads the connection in the
// background while a handler runs (from the start without a body, once the
// body is read otherwise), lifting the read deadline as it starts, and
// cancels the request's context when that read fails; a read deadline set
// after it started (the server set limits.read_timeout on every route,
// bodies or not) made that read fail at the deadline. Fixed in 0466f5c:
// without a body the deadline is lifted, not set. With that commit's
// server.go change reverted, the GET below fails at 300 ms with 503.
// Both requests go over one keep-alive connection: a GET without a body
// waits 1.2 s for the first fleet analysis, past the 300 ms read timeout;
// then an admission, whose body is read at once, waits 1.2 s for the
// log's write lock (held by another connection) past it too.
func TestSlowHandlerPastReadDeadline(t *testing.T) {
	const slow = 1200 * time.Millisecond
	e := newEnv(t, func(d *Deps, o *[]Option) {
		*o = append(*o, WithLimits(Limits{ReadTimeout: 300 * time.Millisecond, UploadTimeout: 300 * time.Millisecond, TelemetryTimeout: 300 * time.Millisecond}))
		// The server's fleet analysis: its first takes slow.
		inner := d.Risk
		var first atomic.Bool
		r, err := gate.NewRiskCache(func(ctx context.Context) (egress.Report, error) {
			if first.CompareAndSwap(false, true) {
				time.Sleep(slow)
			}
			return inner.Report(ctx)
		}, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		d.Risk = r
	})
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	roundTrip := func(method, path string, role Role, body string) (int, string, time.Duration) {
		t.Helper()
		start := time.Now()
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: wardgate\r\nAuthorization: Bearer %s\r\n", method, path, string(e.tokens[role]))
		if body != "" {
			req += fmt.Sprintf("Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
		}
		if _, err := io.WriteString(conn, req+"\r\n"+body); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s %s: no answer on the keep-alive connection: %v", method, path, err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, string(b), time.Since(start)
	}

	// No body, no analysis yet: the request waits for the first one.
	code, body, took := roundTrip("GET", "/v1/findings", RoleAuditor, "")
	if code != 200 || took < 600*time.Millisecond {
		t.Fatalf("GET /v1/findings after %s: %d %s", took, code, body)
	}

	u := e.evaluate(RoleCI)
	if !u.Allow {
		t.Fatalf("evaluation: %+v", u)
	}
	// Hold the write lock of the log's database, so the admission's log
	// append waits for it.
	raw, err := sql.Open("sqlite", filepath.Join(e.dir, "wardgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	lock, err := raw.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	released := make(chan error, 1)
	go func() {
		time.Sleep(slow)
		_, err := lock.ExecContext(t.Context(), "COMMIT")
		released <- err
	}()
	code, body, took = roundTrip("POST", "/v1/admissions", RoleUpdateServer,
		`{"digest":"`+u.Digest+`","device":{"id":"P-1","class":"infusion-pump","installedVersion":"2.3.0"}}`)
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	var a AdmissionResponse
	if err := json.Unmarshal([]byte(body), &a); err != nil || code != 200 || !a.Decision.Allow || took < slow-100*time.Millisecond {
		t.Fatalf("POST /v1/admissions after %s: %d %s", took, code, strings.TrimSpace(body))
	}
}
