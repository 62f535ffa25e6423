package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Submit once the Writer is closed.
var ErrClosed = errors.New("groupcommit: writer closed")

// DefaultMax bounds one batch unless Options says otherwise.
const DefaultMax = 512

// DefaultTimeout bounds one commit unless Options says otherwise.
const DefaultTimeout = 30 * time.Second

// CommitFunc writes one batch, all of it or none, and puts each request's
// result in the slot of out with the same index. An error fails every
// request of the batch.
type CommitFunc[T, R any] func(ctx context.Context, batch []T, out []R) error

// Options tune a Writer; zero fields take the defaults.
type Options struct {
	// Max is the most requests one commit takes (DefaultMax).
	Max int
	// Linger is how long a batch under load waits for more requests
	// (DefaultLinger; see Collector).
	Linger time.Duration
	// Timeout bounds one commit (DefaultTimeout). A commit is not bound to
	// any one caller's context: it writes for all of them.
	Timeout time.Duration
}

// Writer is a group committer: Submit hands it one request and returns
// that request's result once the batch holding it is committed;
// concurrent requests share one commit. Expect announces a request on its
// way, so the batch being gathered waits for it (see Collector). Close
// commits what was submitted and stops.
//
// Every wait honours the caller's context: a Submit whose context ends
// returns its error at once. A request whose context has ended before its
// batch is taken is not written; one already in a batch may still be.
//
// A Writer is safe for concurrent use.
type Writer[T, R any] struct {
	commit  CommitFunc[T, R]
	opts    Options
	reqs    chan request[T, R]
	coming  Announcer
	done    chan struct{} // closed by Close: accept nothing more
	stopped chan struct{} // closed once the last batch is committed
	once    sync.Once
	stats   stats
}

type request[T, R any] struct {
	ctx   context.Context
	v     T
	reply chan result[R]
}

type result[R any] struct {
	v   R
	err error
}

// NewWriter starts a Writer that commits with commit.
func NewWriter[T, R any](commit CommitFunc[T, R], opts Options) *Writer[T, R] {
	if opts.Max <= 0 {
		opts.Max = DefaultMax
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	w := &Writer[T, R]{commit: commit, opts: opts, reqs: make(chan request[T, R], opts.Max), done: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

// Submit writes v with the next batch and returns its result once the batch
// is committed, or the context's error as soon as ctx ends.
func (w *Writer[T, R]) Submit(ctx context.Context, v T) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	req := request[T, R]{ctx: ctx, v: v, reply: make(chan result[R], 1)}
	select {
	case <-w.done:
		return zero, ErrClosed
	default:
	}
	select {
	case w.reqs <- req:
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-w.done:
		return zero, ErrClosed
	}
	select {
	case r := <-req.reply:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-w.stopped:
		select {
		case r := <-req.reply:
			return r.v, r.err
		default:
			return zero, ErrClosed // queued after the last batch was taken
		}
	}
}

// Expect announces a Submit on its way: while announced requests are
// coming, the batch being gathered waits for them (up to the linger)
// rather than commit without them. Call done once the Submit has returned
// or will not be made.
func (w *Writer[T, R]) Expect() (done func()) { return w.coming.Announce() }

// Close stops accepting requests, commits those already submitted, and
// returns once the last batch is committed. Calling it again does nothing.
func (w *Writer[T, R]) Close() {
	w.once.Do(func() { close(w.done) })
	<-w.stopped
}

func (w *Writer[T, R]) run() {
	defer close(w.stopped)
	c := Collector[request[T, R]]{Reqs: w.reqs, Done: w.done, Max: w.opts.Max, Linger: w.opts.Linger, Expected: w.coming.Count}
	var buf []request[T, R]
	var out []R
	for {
		batch, ok := c.Next(buf)
		if !ok {
			break
		}
		buf = batch
		out = w.write(batch, out)
	}
	// Closed: what was submitted before is still written.
	for {
		batch := buf[:0]
	drain:
		for len(batch) < w.opts.Max {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		if len(batch) == 0 {
			return
		}
		buf = batch
		out = w.write(batch, out)
	}
}

// write commits the live requests of batch and answers every one.
func (w *Writer[T, R]) write(batch []request[T, R], out []R) []R {
	live := batch[:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply <- result[R]{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return out
	}
	vs := make([]T, len(live))
	for i, r := range live {
		vs[i] = r.v
	}
	if cap(out) < len(live) {
		out = make([]R, len(live))
	}
	out = out[:len(live)]
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout)
	start := time.Now()
	err := w.commit(ctx, vs, out)
	w.stats.add(time.Since(start), len(live), err != nil)
	cancel()
	for i, r := range live {
		if err != nil {
			r.reply <- result[R]{err: err}
		} else {
			r.reply <- result[R]{v: out[i]}
		}
	}
	clear(out)
	return out
}

// Expecting is the number of announced requests not yet done.
func (w *Writer[T, R]) Expecting() int { return w.coming.Count() }

// DurationBuckets are the upper bounds of Stats.Buckets: the commits of a
// store on a good disk take well under a millisecond to a few; a commit
// over 5 ms holds every request behind it as long (the admission paths'
// p99; docs/kubernetes.md).
var DurationBuckets = [...]time.Duration{
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
	5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// Stats are a Writer's commits since it started: each batch taken, timed
// from the start of its commit to its end (the transaction and its fsync).
type Stats struct {
	// Commits is the batches committed or failed; Failed, those whose
	// commit returned an error.
	Commits, Failed uint64
	// Requests is the requests those batches held.
	Requests uint64
	// Sum is their total time; Max the longest.
	Sum, Max time.Duration
	// Buckets[i] counts the commits that took more than
	// DurationBuckets[i-1] and at most DurationBuckets[i]; the last, those
	// longer than every bound.
	Buckets [len(DurationBuckets) + 1]uint64
}

// stats are written by the Writer's one goroutine and read by Stats from
// any: each field is atomic, so a reading may be between two commits'
// updates, never torn.
type stats struct {
	commits, failed, requests atomic.Uint64
	sum, max                  atomic.Int64
	buckets                   [len(DurationBuckets) + 1]atomic.Uint64
}

func (s *stats) add(d time.Duration, requests int, failed bool) {
	i := 0
	for i < len(DurationBuckets) && d > DurationBuckets[i] {
		i++
	}
	s.buckets[i].Add(1)
	s.sum.Add(int64(d))
	if int64(d) > s.max.Load() {
		s.max.Store(int64(d))
	}
	s.requests.Add(uint64(requests))
	if failed {
		s.failed.Add(1)
	}
	s.commits.Add(1)
}

// Stats returns the Writer's commits so far.
func (w *Writer[T, R]) Stats() Stats {
	st := Stats{
		Commits:  w.stats.commits.Load(),
		Failed:   w.stats.failed.Load(),
		Requests: w.stats.requests.Load(),
		Sum:      time.Duration(w.stats.sum.Load()),
		Max:      time.Duration(w.stats.max.Load()),
	}
	for i := range st.Buckets {
		st.Buckets[i] = w.stats.buckets[i].Load()
	}
	return st
}
