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
