package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

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
func (f *fakeGate) Evaluated(Image) bool                  { return true }

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
			ans, err := r.Validate(t.Context(), k, []byte(podReviewJSON), func(_ context.Context, a *Answer) error {
				recorded = append(recorded, a.Decision)
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
	if _, err := r.Validate(t.Context(), k, []byte(podReviewJSON), func(context.Context, *Answer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}
