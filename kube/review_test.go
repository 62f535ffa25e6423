package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/trust"
)

// fakeGate answers every admission of an evaluated image with allowed,
// calls record with that, and then fails the admissions it is told to
// (as a log append that fails after the decision was made).
type fakeGate struct {
	failAfterRecord error
	calls           [][]Admission
}

func (f *fakeGate) Evaluate(context.Context, Image) error { return nil }
func (f *fakeGate) Evaluated(context.Context, Image) bool { return true }

func (f *fakeGate) Admit(ctx context.Context, as []Admission, record func(context.Context, []Admitted) error) []Admitted {
	f.calls = append(f.calls, as)
	got := make([]Admitted, len(as))
	for i := range as {
		idx := uint64(i)
		got[i].Verdict = Verdict{Allowed: true, LogIndex: &idx}
	}
	if record != nil {
		if err := record(ctx, slices.Clone(got)); err != nil {
			for i := range got {
				got[i] = Admitted{Err: err}
			}
			return got
		}
	}
	if f.failAfterRecord != nil {
		for i := range got {
			got[i] = Admitted{Err: f.failAfterRecord}
		}
	}
	return got
}

var podReviewJSON = `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},` +
	`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"facility","operation":"CREATE",` +
	`"object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[` +
	`{"name":"a","image":"reg.example/v/app:1.0@` + hexd + `"},{"name":"b","image":"reg.example/v/app:1.1@` + hexd[:len(hexd)-1] + `f"}]}}}}`

// A review's images go to the gate in one Admit call, whose record
// callback records the answer as decided; the final answer is recorded
// again only when its decision is another (a verdict that could not be
// logged turns the allow into a deny).
func TestValidateRecordsOnceWithTheVerdicts(t *testing.T) {
	k := &trust.Kubernetes{Configured: true, Images: []trust.ImageMapping{{Repository: "reg.example/v/app", Vendor: "v", Product: "app", DeviceClass: "c"}}}
	for _, c := range []struct {
		name     string
		fail     error
		recorded []string
		allowed  bool
	}{
		{"allowed", nil, []string{DecisionAllow}, true},
		{"log failed after the decision", errors.New("log append: disk full"), []string{DecisionAllow, DecisionDeny}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &fakeGate{failAfterRecord: c.fail}
			r, err := NewReviewer(g, WithRegistries("reg.example"))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var recorded []string
			ans, err := r.Validate(t.Context(), k, []byte(podReviewJSON), func(_ context.Context, workload, decision string) error {
				if workload != "k8s/facility/Pod/p" {
					t.Errorf("recorded workload %q", workload)
				}
				recorded = append(recorded, decision)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(g.calls) != 1 || len(g.calls[0]) != 2 {
				t.Fatalf("gate called %d times: %+v", len(g.calls), g.calls)
			}
			if !slices.Equal(recorded, c.recorded) || ans.Review.Response.Allowed != c.allowed {
				t.Fatalf("recorded %q, allowed %v", recorded, ans.Review.Response.Allowed)
			}
		})
	}
	// A record that fails fails the review (the server answers 500: the
	// API server's failurePolicy Fail refuses the request).
	r, err := NewReviewer(&fakeGate{}, WithRegistries("reg.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	boom := fmt.Errorf("audit: disk I/O error")
	if _, err := r.Validate(t.Context(), k, []byte(podReviewJSON), func(context.Context, string, string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

// countingResolver answers a tag with the digest it is set to, counting
// the registry's answers; an empty digest is a registry error.
type countingResolver struct {
	digest string
	calls  int
}

func (c *countingResolver) Resolve(context.Context, string) (string, error) {
	c.calls++
	if c.digest == "" {
		return "", errors.New("registry: 503")
	}
	return c.digest, nil
}

// ttlStep is one review of a tag: the clock advanced, the tag's digest in
// the registry ("" unreachable), the digest resolved ("" refused), the
// registry's answers so far.
type ttlStep struct {
	advance   time.Duration
	set, want string
	calls     int
}

// With WithTagTTL a tag's resolution is kept for the TTL, dated when the
// registry was asked: within it the registry is not asked again; once it
// has passed a moved tag is seen. A failed resolution is not kept; without
// the option every review asks.
func TestTagTTL(t *testing.T) {
	k := &trust.Kubernetes{Configured: true, Images: []trust.ImageMapping{{Repository: "reg.example/v/app", Vendor: "v", Product: "app", DeviceClass: "c"}}}
	other := hexd[:len(hexd)-1] + "f"
	for _, c := range []struct {
		ttl   time.Duration
		steps []ttlStep
	}{
		{ttl: 10 * time.Second, steps: []ttlStep{
			{0, hexd, hexd, 1},
			{9 * time.Second, other, hexd, 1}, // moved, still within the TTL
			{time.Second, other, other, 2},    // the TTL has passed: the move is seen
			{5 * time.Second, "", other, 2},   // kept: the registry is not asked
			{5 * time.Second, "", "", 3},      // expired and unreachable: refused
			{0, other, other, 4},              // the failure was not kept
		}},
		{ttl: 0, steps: []ttlStep{
			{0, hexd, hexd, 1},
			{0, other, other, 2},
			{0, other, other, 3},
		}},
	} {
		res := &countingResolver{}
		r, err := NewReviewer(&fakeGate{}, WithRegistries("reg.example"), WithResolver(res), WithTagTTL(c.ttl))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
		r.cfg.now = func() time.Time { return now }
		for i, s := range c.steps {
			now = now.Add(s.advance)
			res.digest = s.set
			got := r.resolve(t.Context(), k, "reg.example/v/app:1.0")
			d := ""
			if got.refuse == nil {
				d = digestPart(got.img.Digest)
			} else if got.refuse.Code != CodeImageUnresolved {
				t.Fatalf("ttl %s step %d: refused %+v", c.ttl, i, got.refuse)
			}
			if d != s.want || res.calls != s.calls {
				t.Fatalf("ttl %s step %d: digest %q after %d registry answers, want %q after %d", c.ttl, i, d, res.calls, s.want, s.calls)
			}
		}
		r.Close()
	}
	for _, bad := range []time.Duration{-time.Second, MaxTagTTL + time.Second} {
		if _, err := NewReviewer(&fakeGate{}, WithTagTTL(bad)); err == nil {
			t.Fatalf("ttl %s accepted", bad)
		}
	}
}

func digestPart(ref string) string { return ref[strings.LastIndexByte(ref, '@')+1:] }
