package groupcommit

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// sum commits a batch by recording it and answering each request with its
// value times ten.
type sum struct {
	mu      sync.Mutex
	batches [][]int
	fail    error
	block   chan struct{} // when set, each commit waits for it
}

func (s *sum) commit(ctx context.Context, batch []int, out []int) error {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.batches = append(s.batches, slices.Clone(batch))
	for i, v := range batch {
		out[i] = v * 10
	}
	return nil
}

func TestWriterSubmit(t *testing.T) {
	s := &sum{}
	w := NewWriter(s.commit, Options{})
	defer w.Close()
	var wg sync.WaitGroup
	for i := 1; i <= 50; i++ {
		wg.Go(func() {
			got, err := w.Submit(t.Context(), i)
			if err != nil || got != i*10 {
				t.Errorf("Submit(%d) = %d, %v; want %d", i, got, err, i*10)
			}
		})
	}
	wg.Wait()
	n := 0
	for _, b := range s.batches {
		n += len(b)
	}
	if n != 50 {
		t.Fatalf("%d requests committed in %d batches, want 50", n, len(s.batches))
	}
}

func TestWriterCommitErrorFailsTheBatch(t *testing.T) {
	boom := errors.New("disk full")
	w := NewWriter((&sum{fail: boom}).commit, Options{})
	defer w.Close()
	if _, err := w.Submit(t.Context(), 1); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

// A caller whose context ends while its batch is being committed gets its
// context's error at once, not when the commit ends.
func TestWriterSubmitHonoursContext(t *testing.T) {
	s := &sum{block: make(chan struct{})}
	w := NewWriter(s.commit, Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := w.Submit(ctx, 1)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Submit returned after %s, with a 50ms budget", el)
	}
	// A request whose context is over before its batch is taken is not
	// written.
	done, cancel2 := context.WithCancel(t.Context())
	cancel2()
	if _, err := w.Submit(done, 2); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	close(s.block)
	w.Close()
	for _, b := range s.batches {
		if slices.Contains(b, 2) {
			t.Fatalf("a cancelled request was written: %v", s.batches)
		}
	}
}

func TestWriterCloseCommitsWhatWasSubmitted(t *testing.T) {
	s := &sum{block: make(chan struct{})}
	w := NewWriter(s.commit, Options{})
	res := make(chan error, 20)
	for i := range 20 {
		go func() {
			_, err := w.Submit(t.Context(), i)
			res <- err
		}()
	}
	time.Sleep(20 * time.Millisecond) // let them queue behind the blocked commit
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	close(s.block)
	<-closed
	var committed, refused int
	for range 20 {
		switch err := <-res; {
		case err == nil:
			committed++
		case errors.Is(err, ErrClosed):
			refused++
		default:
			t.Fatalf("err = %v", err)
		}
	}
	n := 0
	for _, b := range s.batches {
		n += len(b)
	}
	if n != committed || committed+refused != 20 || committed == 0 {
		t.Fatalf("%d committed, %d refused, %d written", committed, refused, n)
	}
	if _, err := w.Submit(t.Context(), 99); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
}

// Announced requests are waited for: three announced, they share a batch.
func TestWriterExpect(t *testing.T) {
	s := &sum{}
	w := NewWriter(s.commit, Options{Linger: 10 * time.Minute})
	defer w.Close()
	dones := []func(){w.Expect(), w.Expect(), w.Expect()}
	var wg sync.WaitGroup
	for i, d := range dones {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 20 * time.Millisecond)
			if _, err := w.Submit(t.Context(), i); err != nil {
				t.Error(err)
			}
			d()
		})
	}
	wg.Wait()
	if len(s.batches) != 1 || len(s.batches[0]) != 3 {
		t.Fatalf("batches %v, want one of three", s.batches)
	}
}

// Each commit lands in the bucket of the first bound it does not exceed;
// a bound is inclusive.
func TestStatsBuckets(t *testing.T) {
	w := &Writer[int, int]{}
	for _, d := range []time.Duration{0, 500 * time.Microsecond, 501 * time.Microsecond, 5 * time.Millisecond, 7 * time.Millisecond, time.Minute} {
		w.stats.add(d, 2, false)
	}
	w.stats.add(3*time.Millisecond, 1, true)
	got := w.Stats()
	want := Stats{Commits: 7, Failed: 1, Requests: 13, Max: time.Minute,
		Sum: time.Minute + 16001*time.Microsecond}
	want.Buckets[0] = 2 // 0 and 500µs
	want.Buckets[1] = 1 // 501µs
	want.Buckets[3] = 2 // 3 ms and 5 ms
	want.Buckets[4] = 1 // 7 ms
	want.Buckets[len(DurationBuckets)] = 1
	if got != want {
		t.Fatalf("Stats() = %+v\nwant       %+v", got, want)
	}
}

// A Writer times each batch's commit, failed ones too, and counts the
// requests they held.
func TestWriterStats(t *testing.T) {
	s := &sum{block: make(chan struct{})}
	entered := make(chan struct{})
	var once sync.Once
	w := NewWriter(func(ctx context.Context, batch []int, out []int) error {
		once.Do(func() { close(entered) })
		return s.commit(ctx, batch, out)
	}, Options{})
	defer w.Close()
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		wg.Go(func() { w.Submit(t.Context(), i) })
	}
	<-entered // the first commit holds for at least 30 ms
	time.Sleep(30 * time.Millisecond)
	close(s.block)
	wg.Wait()
	s.mu.Lock()
	s.fail = errors.New("disk full")
	s.mu.Unlock()
	if _, err := w.Submit(t.Context(), 4); err == nil {
		t.Fatal("Submit: nil error, want the commit's")
	}
	got := w.Stats()
	if got.Commits != uint64(len(s.batches))+1 || got.Failed != 1 || got.Requests != 4 {
		t.Fatalf("Stats() = %+v: want %d commits (1 failed) of 4 requests", got, len(s.batches)+1)
	}
	var n uint64
	for _, b := range got.Buckets {
		n += b
	}
	slow := uint64(0)
	for i, b := range got.Buckets {
		if i > 0 && DurationBuckets[i-1] >= 25*time.Millisecond {
			slow += b
		}
	}
	if n != got.Commits || slow < 1 || got.Max < 30*time.Millisecond || got.Sum < got.Max {
		t.Fatalf("Stats() = %+v: want every commit in a bucket, the first (held 30 ms) over 25 ms", got)
	}
}
