package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/storetest"
)

// A server that is not there: the error says the store is unavailable and
// names the host, port and database, never the password. It needs no
// PostgreSQL server: nothing listens on the port it dials.
func TestServerUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nothing listens on
	dsn := "postgres://wardgate:s3cret-pw@" + addr + "/gate?sslmode=disable&connect_timeout=5"
	_, err = store.Open(t.Context(), dsn)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("open with the server down: %v, want ErrUnavailable", err)
	}
	msg := err.Error()
	if want := "open postgres " + addr + "/gate: store: unavailable: "; !strings.HasPrefix(msg, want) {
		t.Fatalf("error %q does not start with %q", msg, want)
	}
	if strings.Contains(msg, "s3cret-pw") {
		t.Fatalf("error %q shows the password", msg)
	}
	// A DSN that does not parse: its password is not shown either.
	_, err = store.Open(t.Context(), "postgres://wardgate:s3cret-pw@"+addr+"/gate?sslmode=sometimes")
	if err == nil || !strings.HasPrefix(err.Error(), "store: postgres DSN: ") || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("bad DSN: %v", err)
	}
}

// proxy forwards TCP connections to a server until cut: then it closes
// every connection and refuses new ones, as a server gone down or a
// network partition does, until restored on the same address.
type proxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
	wg           sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(s, c); s.Close() })
			p.wg.Go(func() { io.Copy(c, s); c.Close() })
		}
	})
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// The server lost in the middle: every kind of operation (a plain write,
// a group-committed write, a log append, a read, Ping) fails with
// ErrUnavailable, within its context, and once the server is back the
// same store works again, without being reopened.
func TestConnectionLost(t *testing.T) {
	t.Parallel()
	dsn := freshSchema(t)
	u, _ := url.Parse(dsn)
	p := newProxy(t, u.Host)
	u.Host = p.addr
	db := openDB(t, u.String())
	ctx := t.Context()
	if err := db.RecordRelease(ctx, storetest.Release("1.0.0", 'a', true, 0)); err != nil {
		t.Fatal(err)
	}
	if err := db.Audit(ctx, store.AuditRecord{Time: storetest.At(0), RequestID: "before"}); err != nil {
		t.Fatal(err)
	}
	p.cut()
	seq := &counter{}
	ops := map[string]func(context.Context) error{
		"record release": func(ctx context.Context) error {
			return db.RecordRelease(ctx, storetest.Release("1.1.0", 'b', true, 1))
		},
		"audit": func(ctx context.Context) error {
			return db.Audit(ctx, store.AuditRecord{Time: storetest.At(1), RequestID: "during"})
		},
		"append log": func(ctx context.Context) error {
			_, _, err := db.AppendLog(ctx, seq, []store.LogItem{{Envelope: []byte("{}"), Artifact: storetest.Digest('a'), Time: storetest.At(1)}})
			return err
		},
		"latest admitted": func(ctx context.Context) error {
			_, err := db.LatestAdmitted(ctx, "acme", "pump")
			return err
		},
		"ping": db.Ping,
	}
	for name, op := range ops {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		err := op(ctx)
		cancel()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the server gone: %v, want ErrUnavailable", name, err)
		} else if !strings.Contains(err.Error(), p.addr) {
			t.Errorf("%s: %q does not name the server", name, err)
		}
	}
	p.restore(t)
	for name, op := range ops {
		if err := op(t.Context()); err != nil {
			t.Errorf("%s once the server is back: %v", name, err)
		}
	}
	rs, err := db.Releases(ctx, "acme", "pump")
	if err != nil || len(rs) != 2 {
		t.Fatalf("releases after the outage: %+v, %v; want 1.0.0 and 1.1.0", rs, err)
	}
	recs, err := db.AuditLog(ctx, store.AuditFilter{})
	if err != nil || len(recs) != 2 || recs[0].RequestID != "before" || recs[1].RequestID != "during" {
		t.Fatalf("audit after the outage: %+v, %v", recs, err)
	}
}

// counter is the smallest Sequencer: leaf hashes are the envelopes'
// lengths; enough to exercise the store's side of an append.
type counter struct{}

func (counter) Sequence(ctx context.Context, head store.Checkpoint, _ store.NodeReader, items []store.LogItem) (store.LogBatch, error) {
	var b store.LogBatch
	for i, it := range items {
		idx := head.Size + uint64(i)
		b.Entries = append(b.Entries, store.LogEntry{Index: idx, LeafHash: []byte{byte(len(it.Envelope))}, Envelope: it.Envelope, Artifact: it.Artifact, Time: it.Time})
		b.Nodes = append(b.Nodes, store.LogNode{ID: store.NodeID{Index: idx}, Hash: []byte{byte(len(it.Envelope))}})
	}
	size := head.Size + uint64(len(items))
	b.Checkpoint = store.Checkpoint{Origin: "test/counter", Size: size, Root: []byte{byte(size)}, Note: []byte("test/counter\n")}
	return b, nil
}
