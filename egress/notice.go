package egress

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// notices collects fleet-change notices: behaviours of a device class
// that devices with and without an update show alike. One notice per
// (class, destination or segment) gathers every such behaviour.
type notices struct {
	m map[[2]string]*Finding
}

func newNotices() *notices { return &notices{m: map[[2]string]*Finding{}} }

// add records that devices of class showed a behaviour at dest that no
// update is blamed for.
func (n *notices) add(class, dest string, devices []string, first, last time.Time, bytes, conns int64, cs []Contrast, explanation string) {
	k := [2]string{class, dest}
	f := n.m[k]
	if f == nil {
		f = &Finding{Code: CodeFleetChange, Class: class, Destinations: []string{dest}, FirstSeen: first, LastSeen: last}
		n.m[k] = f
	} else {
		f.Explanation += " "
	}
	for _, d := range devices {
		f.Devices = appendUnique(f.Devices, d)
	}
	slices.Sort(f.Devices)
	f.FirstSeen, f.LastSeen = minTime(f.FirstSeen, first), maxTime(f.LastSeen, last)
	f.Bytes += bytes
	f.Connections += conns
	for _, c := range cs {
		if !slices.ContainsFunc(f.Contrasts, func(x Contrast) bool { return x.Update == c.Update && x.Behaviour == c.Behaviour }) {
			f.Contrasts = append(f.Contrasts, c.public())
		}
	}
	slices.SortFunc(f.Contrasts, func(x, y Contrast) int {
		return cmp.Or(cmp.Compare(x.Behaviour, y.Behaviour), cmp.Compare(x.Update, y.Update))
	})
	f.Explanation += explanation
}

func (n *notices) findings() []Finding {
	out := make([]Finding, 0, len(n.m))
	for _, f := range n.m {
		f.Explanation = strings.TrimSpace(f.Explanation)
		out = append(out, *f)
	}
	return out
}

// public drops the device lists kept for the analysis.
func (c Contrast) public() Contrast {
	c.exposed, c.controls = nil, nil
	return c
}
