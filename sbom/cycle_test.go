package sbom

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// TestFindCycleMatchesReference: on random graphs, findCycle names the same
// cycle (or none) as the map-based search it replaced.
func TestFindCycleMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cycles := 0
	for range 2000 {
		n := 1 + rng.IntN(12)
		var edges []Dependency
		for range rng.IntN(3 * n) {
			a, b := rng.IntN(n), rng.IntN(n)
			if a != b {
				edges = append(edges, Dependency{From: fmt.Sprint("n", a), To: fmt.Sprint("n", b)})
			}
		}
		slices.SortFunc(edges, compareDep)
		edges = slices.Compact(edges)
		got, want := findCycle(edges), findCycleReference(edges)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("edges %v: cycle %v, reference %v", edges, got, want)
		}
		if got != nil {
			cycles++
		}
	}
	if cycles < 100 {
		t.Fatalf("only %d graphs had a cycle", cycles)
	}
}

// findCycleReference is findCycle as first written, with maps: the reference
// the slice version must agree with. Iterative, so
// a long chain cannot overflow the stack.
func findCycleReference(edges []Dependency) []string {
	adj := map[string][]string{}
	for _, e := range edges {
		adj[e.From] = append(adj[e.From], e.To)
	}
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	type frame struct {
		node string
		next int
	}
	for _, e := range edges {
		if color[e.From] != white {
			continue
		}
		stack := []frame{{node: e.From}}
		color[e.From] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next >= len(adj[top.node]) {
				color[top.node] = black
				stack = stack[:len(stack)-1]
				continue
			}
			n := adj[top.node][top.next]
			top.next++
			switch color[n] {
			case white:
				color[n] = grey
				stack = append(stack, frame{node: n})
			case grey:
				var cyc []string
				for i := range stack {
					if stack[i].node == n || cyc != nil {
						cyc = append(cyc, stack[i].node)
					}
				}
				return append(cyc, n)
			}
		}
	}
	return nil
}
