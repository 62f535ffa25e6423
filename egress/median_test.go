package egress

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMedianBySelection: medianInPlace gives the value sorting gives, on
// lists with and without runs of equal values, odd and even lengths.
func TestMedianBySelection(t *testing.T) {
	sorted := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	rng := rand.New(rand.NewPCG(1, 2))
	if got := medianInPlace(nil); got != 0 {
		t.Fatalf("median of nothing: %v", got)
	}
	for n := 1; n < 300; n++ {
		for _, distinct := range []int{1, 2, 5, 1 << 30} {
			v := make([]float64, n)
			for i := range v {
				v[i] = float64(rng.IntN(distinct)) * 1.5
			}
			if n%7 == 0 {
				slices.Sort(v) // already sorted, and reversed
				if n%14 == 0 {
					slices.Reverse(v)
				}
			}
			want := sorted(v)
			if got := medianInPlace(slices.Clone(v)); got != want {
				t.Fatalf("n %d, %d distinct: median %v, sorting gives %v (%v)", n, distinct, got, want, v)
			}
			for k := range v {
				w := slices.Clone(v)
				selectNth(w, k)
				s := slices.Sorted(slices.Values(v))
				if w[k] != s[k] || slices.Max(append([]float64{w[k]}, w[:k]...)) != w[k] || slices.Min(append([]float64{w[k]}, w[k+1:]...)) != w[k] {
					t.Fatalf("n %d: selectNth(%d) put %v there (sorted %v), partitions %v %v", n, k, w[k], s[k], w[:k], w[k+1:])
				}
			}
		}
	}
}

// TestMergeInto: mergeInto gives what mergeTimes gives, whatever the
// overlap of the two lists and the limit.
func TestMergeInto(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	list := func(n, span int) []int64 {
		l := make([]int64, n)
		for i := range l {
			l[i] = int64(rng.IntN(span))
		}
		slices.Sort(l)
		return l
	}
	for range 20000 {
		a, b := list(rng.IntN(40), 1+rng.IntN(100)), list(rng.IntN(10), 1+rng.IntN(100))
		if rng.IntN(3) == 0 {
			for i := range b {
				b[i] += 100 // all after a's
			}
		}
		limit := 1 + rng.IntN(50)
		if len(a) > limit {
			a = a[:limit]
		}
		want := mergeTimes(slices.Clone(a), b, limit)
		got := mergeInto(slices.Clip(slices.Clone(a)), b, limit)
		if !slices.Equal(got, want) {
			t.Fatalf("mergeInto(%v, %v, %d) = %v, mergeTimes gives %v", a, b, limit, got, want)
		}
	}
}
