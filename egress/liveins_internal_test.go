package egress

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// insLog is an InstallationLog over a list, in the order recorded.
type insLog struct {
	GroupStore
	rec   []Installation
	since int // calls of InstallationsSince
}

func (s *insLog) RecordInstallation(ctx context.Context, in Installation) error {
	s.rec = append(s.rec, in)
	return nil
}

func (s *insLog) Installations(ctx context.Context) ([]Installation, error) {
	out := slices.Clone(s.rec)
	slices.SortFunc(out, CompareInstallations)
	return out, nil
}

func (s *insLog) InstallationsSince(ctx context.Context, after int64) ([]Installation, int64, error) {
	s.since++
	return slices.Clone(s.rec[after:]), int64(len(s.rec)), nil
}

// Live reads only the installations recorded since its last analysis and
// merges them, recorded in any time order, into those it holds: always
// what Installations gives, and the very slice held when none are new.
func TestLiveInstallationsMerged(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	s := &insLog{}
	l := NewLive()
	t0 := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	var prev []Installation
	for step := range 12 {
		for range rng.IntN(30) {
			s.rec = append(s.rec, Installation{Device: fmt.Sprintf("dev-%d", rng.IntN(9)), Digest: fmt.Sprintf("sha256:%064d", rng.IntN(4)),
				Product: "p", Version: "v", Time: t0.Add(time.Duration(rng.IntN(50)) * time.Minute)})
		}
		got, err := l.installations(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := s.Installations(t.Context())
		if !slices.EqualFunc(got, want, sameInstallation) {
			t.Fatalf("step %d: %d installations merged, not Installations' %d in order", step, len(got), len(want))
		}
		if len(got) == len(prev) && len(got) > 0 && !sameSlice(got, prev) {
			t.Fatalf("step %d: nothing new, yet a new slice", step)
		}
		prev = got
	}
	if s.since != 12 {
		t.Fatalf("%d reads since a point, want 12", s.since)
	}
}
