package egress

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// newDests groups the post-baseline contacts to destinations no device of
// the class reached in the baseline, by (class, destination).
func (a *Analyzer) newDests() map[[2]string][]contactKey {
	out := map[[2]string][]contactKey{}
	for k, c := range a.contacts {
		if a.baseline[c.class][k.dest] {
			continue
		}
		out[[2]string{c.class, k.dest}] = append(out[[2]string{c.class, k.dest}], k)
	}
	return out
}

// newDestinations raises new-destination, fleet-correlation and beaconing
// against the updates whose devices reach a destination new to their class
// while comparable devices without them do not; a new destination that
// devices with and without an update reach alike is a fleet-change notice.
func (a *Analyzer) newDestinations(n *notices) []Finding {
	var fs []Finding
	k := a.cfg.Thresholds.FleetMinDevices
	nd := a.newDests()
	byDest := map[string][]contactKey{} // destination -> contacts in every class where it is new
	for cd, keys := range nd {
		byDest[cd[1]] = append(byDest[cd[1]], keys...)
	}
	for cd, keys := range nd {
		class, dest := cd[0], cd[1]
		onsets := map[string]time.Time{}
		for _, key := range keys {
			onsets[key.device] = a.contacts[key].first
		}
		elsewhere := map[string]time.Time{}
		for _, key := range byDest[dest] {
			if c := a.contacts[key]; c.class != class {
				elsewhere[key.device] = c.first
			}
		}
		at := a.attribute(behaviourReach, class, onsets, a.dormancy(), elsewhere)
		blamed := false
		for _, c := range at.blamed() {
			// Devices whose every connection there was inside the
			// vendor's manifest for the release they ran are not blamed.
			var devs []string
			for _, d := range c.exposed {
				if a.contacts[contactKey{d, dest}].undeclared > 0 {
					devs = append(devs, d)
				}
			}
			if len(devs) == 0 {
				continue
			}
			blamed = true
			g := a.group(devs, dest)
			fs = append(fs, Finding{Code: CodeNewDestination, Update: c.Update, Class: class, Devices: devs, Destinations: []string{dest},
				FirstSeen: g.first, LastSeen: g.last, Bytes: g.bytes, Connections: g.n, Contrasts: []Contrast{c.public()},
				Explanation: fmt.Sprintf("%d %s device(s) (%s) reached %s (%s) after installing update %s, first on %s; %s. No %s device reached it in the baseline window; %d connection(s), %d bytes sent.",
					len(devs), class, strings.Join(devs, ", "), dest, strings.Join(g.targets, ", "), short(c.Update), g.first.Format(time.RFC3339),
					c.phrase(class, a.cfg.Thresholds.ContrastAlpha), class, g.n, g.bytes)})
			if len(devs) >= k {
				var lags []string
				for _, d := range devs {
					lag, _ := a.exposure(d, c.Update, onsets[d])
					lags = append(lags, fmt.Sprintf("%s %s", d, lag.Round(time.Hour)))
				}
				fs = append(fs, Finding{Code: CodeFleetCorrelation, Update: c.Update, Class: class, Devices: devs, Destinations: []string{dest},
					FirstSeen: g.first, LastSeen: g.last, Bytes: g.bytes, Connections: g.n, Contrasts: []Contrast{c.public()},
					Explanation: fmt.Sprintf("%d of the %d %s devices that installed update %s reached %s after installing it (delay after install: %s), and %s; it was not reached in the baseline window. The update itself, not one device, is the common cause.",
						len(devs), c.Installers, class, short(c.Update), dest, strings.Join(lags, ", "), c.phrase(class, a.cfg.Thresholds.ContrastAlpha))})
			}
			var beacons []string
			var periods []float64
			for _, d := range devs {
				if p, ok := a.contacts[contactKey{d, dest}].beacon(a.cfg.Thresholds); ok {
					beacons = append(beacons, d)
					periods = append(periods, p)
				}
			}
			if len(beacons) > 0 {
				b := a.group(beacons, dest)
				fs = append(fs, Finding{Code: CodeBeaconing, Update: c.Update, Class: class, Devices: beacons, Destinations: []string{dest},
					FirstSeen: b.first, LastSeen: b.last, Bytes: b.bytes, Connections: b.n, Contrasts: []Contrast{c.public()},
					Explanation: fmt.Sprintf("%d %s device(s) (%s) running update %s connect to new destination %s at regular intervals (median period %s, jitter at most %.0f%%), since %s, %d connection(s) and %d bytes in all: a command-and-control beacon looks like this; the baseline has no such destination.",
						len(beacons), class, strings.Join(beacons, ", "), short(c.Update), dest, time.Duration(median(periods)*float64(time.Second)).Round(time.Second),
						a.cfg.Thresholds.BeaconMaxJitter*100, b.first.Format(time.RFC3339), b.n, b.bytes)})
			}
		}
		if blamed || len(onsets) < k {
			continue
		}
		devs := make([]string, 0, len(onsets))
		for d := range onsets {
			devs = append(devs, d)
		}
		slices.Sort(devs)
		g := a.group(devs, dest)
		regular := 0
		for _, d := range devs {
			if _, ok := a.contacts[contactKey{d, dest}].beacon(a.cfg.Thresholds); ok {
				regular++
			}
		}
		n.add(class, dest, devs, g.first, g.last, g.bytes, g.n, at.contrasts,
			fmt.Sprintf("%d %s device(s) started to reach %s (%s) after the baseline window, first on %s (%d of them at regular intervals); %s. It is a change of the class, not of an update.",
				len(devs), class, dest, strings.Join(g.targets, ", "), g.first.Format(time.RFC3339), regular, a.contrastSummary(class, at)))
	}
	return fs
}

// contrastSummary says, for a fleet-change notice, why no update is blamed.
func (a *Analyzer) contrastSummary(class string, at attribution) string {
	if len(at.contrasts) == 0 {
		return "none of them had installed an update within the dormancy window before"
	}
	var parts []string
	for _, c := range at.contrasts {
		parts = append(parts, fmt.Sprintf("%d device(s) did so running update %s but %s", c.Reached, short(c.Update), c.phrase(class, a.cfg.Thresholds.ContrastAlpha)))
	}
	return strings.Join(parts, "; ")
}

type contactGroup struct {
	first, last time.Time
	bytes, n    int64
	targets     []string
}

// group sums the contacts of devices with dest.
func (a *Analyzer) group(devices []string, dest string) contactGroup {
	var g contactGroup
	targets := map[string]bool{}
	for i, d := range devices {
		c := a.contacts[contactKey{d, dest}]
		if i == 0 {
			g.first, g.last = c.first, c.last
		}
		g.first, g.last = minTime(g.first, c.first), maxTime(g.last, c.last)
		g.bytes += c.bytes
		g.n += c.n
		for t := range c.targets {
			targets[t] = true
		}
	}
	g.targets = sortedKeys(targets)
	if len(g.targets) > 16 {
		g.targets = append(g.targets[:16], "...")
	}
	return g
}

// beacon is beacon over the contact's times, kept until they change (an
// incremental analysis asks again for contacts no batch touched; the
// thresholds are the analysis's, the same for the contact's life).
func (c *contact) beacon(t Thresholds) (float64, bool) {
	if !c.beaconValid {
		c.beaconPeriod, c.beaconRegular = beacon(c.times, t)
		c.beaconValid = true
	}
	return c.beaconPeriod, c.beaconRegular
}

// beacon reports whether connection times are regular: at least the
// minimum count, and the median absolute deviation of the inter-arrival
// times at most BeaconMaxJitter of their median. It returns the median
// period in seconds.
func beacon(times []int64, t Thresholds) (float64, bool) {
	if len(times) < t.BeaconMinConnections {
		return 0, false
	}
	ts := times // kept ascending (mergeTimes, insertTime)
	if !slices.IsSorted(ts) {
		ts = slices.Clone(times)
		slices.Sort(ts)
	}
	gaps := make([]float64, 0, len(ts))
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; d > 0 {
			gaps = append(gaps, float64(d))
		}
	}
	if len(gaps) < t.BeaconMinConnections-1 {
		return 0, false
	}
	// The medians by selection, in place: the same values as sorting.
	m := medianInPlace(gaps)
	for i, g := range gaps {
		gaps[i] = math.Abs(g - m)
	}
	return m, m > 0 && medianInPlace(gaps) <= t.BeaconMaxJitter*m
}

func median(v []float64) float64 {
	return medianInPlace(slices.Clone(v))
}

// medianInPlace is the median of v (the mean of the two middle values
// when their number is even; 0 for none), reordering v: by selection,
// O(len(v)), the same value sorting gives. v must hold no NaN.
func medianInPlace(v []float64) float64 {
	n := len(v)
	if n == 0 {
		return 0
	}
	k := n / 2
	selectNth(v, k)
	if n%2 == 1 {
		return v[k]
	}
	lower := v[0] // the largest of v[:k], all at most v[k]
	for _, x := range v[1:k] {
		lower = max(lower, x)
	}
	return (lower + v[k]) / 2
}

// selectNth reorders v so that v[k] is the value sorting would put there,
// those before it no larger and those after no smaller (quickselect with
// a three-way partition, so runs of equal values cost no more).
func selectNth(v []float64, k int) {
	lo, hi := 0, len(v) // the part of v that holds position k
	for hi-lo > 1 {
		// Median of three as the pivot.
		a, b, c := v[lo], v[lo+(hi-lo)/2], v[hi-1]
		p := max(min(a, b), min(max(a, b), c))
		// v[lo:lt] < p, v[lt:i] == p, v[gt:hi] > p.
		lt, i, gt := lo, lo, hi
		for i < gt {
			switch x := v[i]; {
			case x < p:
				v[lt], v[i] = v[i], v[lt]
				lt++
				i++
			case x > p:
				gt--
				v[gt], v[i] = v[i], v[gt]
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt
		case k >= gt:
			lo = gt
		default:
			return // v[k] == p
		}
	}
}
