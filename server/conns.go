package server

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Connection limits. Every connection costs a file descriptor; a client
// that opens thousands and leaves them idle must not take the ones
// /healthz, admissions and the stores need. The listener that Listener
// returns:
//   - keeps at most MaxConns connections open (the file-descriptor budget):
//     at the budget it closes the connection that has waited longest
//     without a request in progress (idle keep-alive, or headers still to
//     come) to make room, and when every connection is busy it stops
//     accepting, so new connections wait in the kernel's listen backlog
//     instead of failing with "too many open files";
//   - refuses a client address's connections beyond MaxConnsPerClient
//     (accepted and closed at once);
//   - counts the connections closed by ReadHeaderTimeout and IdleTimeout.

// connLimiter is the shared state of the listener and the connections.
type connLimiter struct {
	s         *Server
	max       int
	perClient int
	slots     chan struct{} // one per open connection
	closed    chan struct{}
	closeOnce sync.Once

	mu     sync.Mutex
	byHost map[string]int
	open   map[*trackedConn]struct{}
}

// trackedConn is an accepted connection under the limiter.
type trackedConn struct {
	net.Conn
	l     *connLimiter
	host  string
	state atomic.Int32 // http.ConnState
	since atomic.Int64 // unix nanoseconds the state began
	once  sync.Once
}

// Listener wraps ln with the connection limits (see Limits). Serve
// HTTPServer's server on it: its ConnState hook tells the limiter which
// connections are idle.
func (s *Server) Listener(ln net.Listener) net.Listener {
	m := s.limits.MaxConns
	if m <= 0 {
		m = fdBudget()
	}
	l := &connLimiter{s: s, max: m, perClient: s.limits.MaxConnsPerClient, slots: make(chan struct{}, m), closed: make(chan struct{}),
		byHost: map[string]int{}, open: map[*trackedConn]struct{}{}}
	s.conns.Store(l)
	return &limitListener{Listener: ln, l: l}
}

// fdReserve is what the file-descriptor budget leaves for everything but
// client connections: stores, spool files, syft's reads.
const fdReserve = 512

// fdBudget is the default MaxConns: the open-file limit less fdReserve.
func fdBudget() int {
	n, ok := openFileLimit()
	if !ok {
		return 4096
	}
	return max(64, n-fdReserve)
}

type limitListener struct {
	net.Listener
	l *connLimiter
}

// Accept waits for room under the budget (evicting the longest-idle
// connection when there is one), then accepts, and refuses a client over
// its own cap.
func (ln *limitListener) Accept() (net.Conn, error) {
	l := ln.l
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		default:
			l.s.metrics.limit(limitConns)
			l.evictIdle()
			select {
			case l.slots <- struct{}{}:
			case <-l.closed:
				return nil, net.ErrClosed
			}
		}
		c, err := ln.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mu.Lock()
		if l.perClient > 0 && l.byHost[host] >= l.perClient {
			l.mu.Unlock()
			l.s.metrics.limit(limitConnsPerClient)
			c.Close()
			<-l.slots
			continue
		}
		tc := &trackedConn{Conn: c, l: l, host: host}
		tc.since.Store(time.Now().UnixNano())
		l.byHost[host]++
		l.open[tc] = struct{}{}
		l.mu.Unlock()
		l.s.metrics.conns.Add(1)
		return tc, nil
	}
}

func (ln *limitListener) Close() error {
	ln.l.closeOnce.Do(func() { close(ln.l.closed) })
	return ln.Listener.Close()
}

// evictIdle closes the connection that has been idle (or waiting for its
// first request's headers) the longest; none when every one is busy.
func (l *connLimiter) evictIdle() {
	l.mu.Lock()
	var oldest *trackedConn
	var since int64
	for c := range l.open {
		st := http.ConnState(c.state.Load())
		if st != http.StateIdle && st != http.StateNew {
			continue
		}
		if t := c.since.Load(); oldest == nil || t < since {
			oldest, since = c, t
		}
	}
	l.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		if l.byHost[c.host]--; l.byHost[c.host] <= 0 {
			delete(l.byHost, c.host)
		}
		delete(l.open, c)
		l.mu.Unlock()
		l.s.metrics.conns.Add(-1)
		<-l.slots
	})
	return err
}

// Read counts the connections the server closes for a read deadline
// before a request: headers too slow (a new connection) or idle too long
// (a kept-alive one).
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		switch http.ConnState(c.state.Load()) {
		case http.StateNew:
			c.l.s.metrics.limit(limitReadHeader)
		case http.StateIdle:
			c.l.s.metrics.limit(limitIdle)
		}
	}
	return n, err
}

// status431 is how net/http starts the answer it writes itself, before
// any handler, to headers over MaxHeaderBytes.
var status431 = []byte("HTTP/1.1 431 ")

// Write counts the answers net/http writes for headers over
// MaxHeaderBytes (on plain HTTP: under TLS the bytes are encrypted here).
func (c *trackedConn) Write(p []byte) (int, error) {
	if http.ConnState(c.state.Load()) == http.StateActive && bytes.HasPrefix(p, status431) {
		c.l.s.metrics.limit(limitHeaderBytes)
	}
	return c.Conn.Write(p)
}

// connState is the http.Server's ConnState hook.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS
		c = nc.NetConn()
	}
	if tc, ok := c.(*trackedConn); ok {
		tc.state.Store(int32(st))
		tc.since.Store(time.Now().UnixNano())
	}
}
