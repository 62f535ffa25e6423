package egress

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"gonum.org/v1/gonum/stat/combin"
)

// This file decides whether a behaviour seen in a device class (reaching
// a destination, sending far more than the baseline, entering a segment)
// is the doing of an update: whether the devices running the update show
// it and comparable devices of the same class that do not run it, over the
// same period, do not.
//
// The behaviour is given by its onset per device: the first time each
// device showed it after the baseline. A device is exposed to update U at
// time t when U is the update in effect on it (its last installation at or
// before t) and t is within the dormancy window of installing it. Each
// onset is judged against the devices at risk at that moment: every device
// of the class that has not shown the behaviour yet and is observed (sent
// any telemetry within ObservedHours of it), exposed or not. Under the
// hypothesis that the behaviour has nothing to do with U, the devices whose
// onsets fall in one hour are a random draw from those at risk, so the
// number of exposed ones is hypergeometric; the test statistic is the
// number of exposed onsets over all hours, whose exact distribution is the
// convolution of those hypergeometric laws. This is the exact permutational
// log-rank test; when nobody installs U during the period it is Fisher's
// exact test on the 2x2 table reached / not reached by installers and
// non-installers. Judging each onset against the devices at risk then is
// what "over the same period" means: a device that installs U late is a
// non-installer until it does, and a device that reached the destination
// before installing U counts against U.
//
// The order of onsets within a change of the whole class can follow the
// order of a rollout (both by device number, say) without the update
// causing anything: what tells a class change apart is that devices
// without the update show the behaviour too. So a second exact test looks
// at the whole period, one row per device: Fisher's exact test on exposed
// onsets and devices observed while running U that never showed it,
// against unexposed onsets and devices never observed running U (observed
// after the first exposed onset) that never showed it.
//
// A class where every device runs U (or whose devices without it sent no
// telemetry then) offers no comparison. For a new destination the rest of
// the fleet then says whether the destination is a change of the whole
// fleet: if devices of other classes, observed at the exposed onsets and
// not running U, reach it too (where it is new for their class as well),
// U is not blamed; if none of them does, U is blamed as before.
//
// U is blamed when at least one exposed device showed the behaviour, at
// least ContrastMinControls comparable devices without U were observed at
// an exposed onset, and the devices without U did not show it: none did,
// or so few that both tests reject independence at ContrastAlpha
// (one-sided, installers more often; requiring both keeps the level). With
// none, the class may be too small for any test to reach the level (four
// devices, three installers: p >= 1/4); attribution then rests on what the
// old fleet correlation used, no comparable device without U doing it,
// now also required to have been observed. When devices without U show
// the behaviour as often, the behaviour is the class's (a fleet-change
// notice), not U's.

// Contrast is the comparison behind an attribution: the devices of a
// class that installed an update against those that did not, over the
// same period.
type Contrast struct {
	// Behaviour is what was compared: "reach" (reaching the destination
	// or segment), "volume" (hours far above the baseline) or
	// "exfil-volume" (hours above exfilBytes).
	Behaviour string `json:"behaviour"`
	// Update is the digest compared.
	Update string `json:"update"`
	// Installers are the class's devices that installed it; Reached those
	// that showed the behaviour while running it, within the dormancy.
	Installers int `json:"installers"`
	Reached    int `json:"reached"`
	// Controls are the comparable devices without it observed at the
	// onsets of its devices; ControlsReached the devices that showed the
	// behaviour without running it.
	Controls        int `json:"controls"`
	ControlsReached int `json:"controlsReached"`
	// POnsets is the one-sided exact p-value of the test at each onset:
	// the chance, were the behaviour unrelated to the update, that at
	// least Reached of the onsets fall on devices running it. PPeriod is
	// Fisher's over the whole period; P the larger of the two.
	P       float64 `json:"p"`
	POnsets float64 `json:"pOnsets"`
	PPeriod float64 `json:"pPeriod"`
	// FleetControls and FleetControlsReached: when the class offers no
	// comparison, the devices of other classes without the update observed
	// at its devices' onsets, and how many of them reached the same new
	// destination.
	FleetControls        int `json:"fleetControls,omitempty"`
	FleetControlsReached int `json:"fleetControlsReached,omitempty"`
	// Blamed: the behaviour is attributed to the update.
	Blamed bool `json:"blamed"`

	exposed  []string // devices of Reached, sorted
	controls []string // devices of ControlsReached, sorted
}

// attribution is the outcome of contrasting one behaviour of a class with
// every update installed in the class.
type attribution struct {
	contrasts []Contrast        // every update with an exposed onset, by digest
	of        map[string]string // device -> the update it is blamed on
}

func (at attribution) blamed() []Contrast {
	var out []Contrast
	for _, c := range at.contrasts {
		if c.Blamed {
			out = append(out, c)
		}
	}
	return out
}

// Behaviours contrasted.
const (
	behaviourReach  = "reach"
	behaviourVolume = "volume"
	behaviourExfil  = "exfil-volume"
)

// attribute contrasts a behaviour of class (onset per device) with every
// update installed in the class. window is the dormancy (0: none).
// elsewhere, when not nil, are the onsets of the same behaviour in other
// classes, for a class that offers no comparison.
func (a *Analyzer) attribute(behaviour, class string, onsets map[string]time.Time, window time.Duration, elsewhere map[string]time.Time) attribution {
	at := attribution{of: map[string]string{}}
	// Only an update some device of the class ran at its onset (within the
	// window) can have a device reach it exposed: the others are not
	// contrasted (a class may have installed thousands).
	tab := a.classTable(class)
	running := map[string]bool{}
	for d, t := range onsets {
		i, ok := tab.index[d]
		if !ok {
			continue
		}
		l := tab.devs[i].installs
		k := sort.Search(len(l), func(k int) bool { return l[k].Time.After(t) })
		if k == 0 {
			continue
		}
		if exposedIn(l, l[k-1].Digest, t, window) {
			running[l[k-1].Digest] = true
		}
	}
	for _, digest := range a.classUpdates[class] {
		if !running[digest] {
			continue
		}
		c := a.contrast(class, onsets, digest, window, elsewhere)
		c.Behaviour = behaviour
		if c.Reached == 0 {
			continue
		}
		at.contrasts = append(at.contrasts, c)
		if c.Blamed {
			for _, d := range c.exposed {
				at.of[d] = digest
			}
		}
	}
	return at
}

// exposure is how long a device has run an update at t, and whether it
// runs it then.
func (a *Analyzer) exposure(device, digest string, t time.Time) (time.Duration, bool) {
	return exposureIn(a.installs[lower(device)], digest, t)
}

// exposureIn is exposure over a device's installations l (by time).
func exposureIn(l []Installation, digest string, t time.Time) (time.Duration, bool) {
	i := sort.Search(len(l), func(i int) bool { return l[i].Time.After(t) })
	if i == 0 || l[i-1].Digest != digest {
		return 0, false
	}
	// Since the first installation of this run of the update.
	j := i - 1
	for j > 0 && l[j-1].Digest == digest {
		j--
	}
	return t.Sub(l[j].Time), true
}

func (a *Analyzer) exposed(device, digest string, t time.Time, window time.Duration) bool {
	return exposedIn(a.installs[lower(device)], digest, t, window)
}

// exposedIn is exposed over a device's installations l (by time).
func exposedIn(l []Installation, digest string, t time.Time, window time.Duration) bool {
	d, ok := exposureIn(l, digest, t)
	return ok && (window == 0 || d <= window)
}

// observed reports whether device sent telemetry within ObservedHours of t.
func (a *Analyzer) observed(device string, t time.Time) bool {
	return a.observedIn(a.hours[device], t)
}

// observedIn is observed over a device's hours with telemetry hs.
func (a *Analyzer) observedIn(hs []int64, t time.Time) bool {
	h := hourBin(t.Unix())
	w := int64(a.cfg.Thresholds.ObservedHours) * 3600
	i, _ := slices.BinarySearch(hs, h-w)
	return i < len(hs) && hs[i] <= h+w
}

// contrast runs the exact test for one behaviour and one update.
func (a *Analyzer) contrast(class string, onsets map[string]time.Time, digest string, window time.Duration, elsewhere map[string]time.Time) Contrast {
	c := Contrast{Update: digest, P: 1}
	tab := a.classTable(class)
	devices := tab.devs
	for _, d := range devices {
		if slices.ContainsFunc(d.installs, func(in Installation) bool { return in.Digest == digest }) {
			c.Installers++
		}
	}
	// Each class device's onset, by its place in the class.
	onsetAt := make([]time.Time, len(devices))
	hasOnset := make([]bool, len(devices))
	for d, t := range onsets {
		if i, ok := tab.index[d]; ok {
			onsetAt[i], hasOnset[i] = t, true
		}
	}
	type onset struct {
		device string
		at     time.Time
		hour   int64
	}
	var ons []onset
	for d, t := range onsets {
		ons = append(ons, onset{d, t, hourBin(t.Unix())})
	}
	slices.SortFunc(ons, func(x, y onset) int { return cmp.Or(x.at.Compare(y.at), cmp.Compare(x.device, y.device)) })
	controls := map[string]bool{}
	dist := []float64{1} // distribution of the exposed onsets so far
	for i := 0; i < len(ons); {
		j := i
		for j < len(ons) && ons[j].hour == ons[i].hour {
			j++
		}
		stratum, at := ons[i:j], ons[i].at
		var n, e, x, k int
		var unexposed []string
		for i, d := range devices {
			t, has := onsetAt[i], hasOnset[i]
			if has && hourBin(t.Unix()) < stratum[0].hour {
				continue // showed it before: no longer at risk
			}
			here := has && hourBin(t.Unix()) == stratum[0].hour
			if !here {
				if !a.observedIn(d.hours, at) {
					continue
				}
				t = at
			}
			n++
			if here {
				k++
			}
			if exposedIn(d.installs, digest, t, window) {
				e++
				if here {
					x++
					c.exposed = append(c.exposed, d.name)
				}
			} else {
				unexposed = append(unexposed, d.name)
				if here {
					c.controls = append(c.controls, d.name)
				}
			}
		}
		if x > 0 {
			for _, d := range unexposed {
				controls[d] = true
			}
		}
		dist = convolve(dist, n, e, k)
		i = j
	}
	for _, d := range c.controls {
		controls[d] = true
	}
	slices.Sort(c.exposed)
	slices.Sort(c.controls)
	c.Reached, c.ControlsReached, c.Controls = len(c.exposed), len(c.controls), len(controls)
	c.POnsets = tail(dist, c.Reached)
	// The whole period: the devices that never showed the behaviour, by
	// whether they were observed running the update.
	var ran, never int
	if len(c.exposed) > 0 {
		from := onsets[c.exposed[0]]
		for _, d := range c.exposed {
			from = minTime(from, onsets[d])
		}
		for i, d := range devices {
			if hasOnset[i] {
				continue
			}
			switch {
			case a.observedRunningIn(d.installs, d.hours, digest, window):
				ran++
			case a.observedSinceIn(d.hours, from):
				never++
			}
		}
	}
	n := c.Reached + c.ControlsReached + ran + never
	c.PPeriod = tail(convolve([]float64{1}, n, c.Reached+ran, c.Reached+c.ControlsReached), c.Reached)
	c.P = math.Max(c.POnsets, c.PPeriod)
	t := a.cfg.Thresholds
	c.Blamed = c.Reached > 0 && c.Controls >= t.ContrastMinControls && (c.ControlsReached == 0 || c.P <= t.ContrastAlpha)
	if c.Reached > 0 && c.Controls < t.ContrastMinControls && elsewhere != nil {
		fleet := map[string]bool{}
		for d := range elsewhere {
			fleet[d] = true
		}
		c.FleetControlsReached = len(fleet)
		for _, x := range c.exposed {
			at := onsets[x]
			for _, dev := range a.inv.Devices {
				if dev.Class != class && !fleet[dev.Name] && a.observed(dev.Name, at) && !a.exposed(dev.Name, digest, at, 0) {
					fleet[dev.Name] = true
				}
			}
		}
		c.FleetControls = len(fleet)
		c.Blamed = c.FleetControls >= t.ContrastMinControls && c.FleetControlsReached == 0
	}
	return c
}

// tail is P(S >= s) for the distribution dist of S.
func tail(dist []float64, s int) float64 {
	p := 0.0
	for ; s < len(dist); s++ {
		p += dist[s]
	}
	return math.Min(1, p)
}

// observedRunningIn reports whether a device (its installations l and its
// hours with telemetry hs) sent telemetry after the baseline while running
// the update (within the dormancy window).
func (a *Analyzer) observedRunningIn(l []Installation, hs []int64, digest string, window time.Duration) bool {
	for i := 0; i < len(l); i++ {
		if l[i].Digest != digest || (i > 0 && l[i-1].Digest == digest) {
			continue
		}
		from := maxTime(l[i].Time, a.baseEnd)
		to := time.Unix(1<<40, 0)
		for j := i + 1; j < len(l); j++ {
			if l[j].Digest != digest {
				to = l[j].Time
				break
			}
		}
		if window > 0 {
			to = minTime(to, l[i].Time.Add(window))
		}
		k, _ := slices.BinarySearch(hs, hourBin(from.Unix()))
		if k < len(hs) && hs[k] < to.Unix() {
			return true
		}
	}
	return false
}

// observedSinceIn reports whether a device (its hours with telemetry hs)
// sent telemetry within ObservedHours before t or any time after.
func (a *Analyzer) observedSinceIn(hs []int64, t time.Time) bool {
	return len(hs) > 0 && hs[len(hs)-1] >= hourBin(t.Unix())-int64(a.cfg.Thresholds.ObservedHours)*3600
}

// convolve adds to the distribution of the exposed count the draw of k
// onsets from n devices at risk of which e are exposed: hypergeometric,
// its probabilities from gonum's log binomial coefficients.
func convolve(dist []float64, n, e, k int) []float64 {
	lo, hi := max(0, k-(n-e)), min(k, e)
	out := make([]float64, len(dist)+hi)
	den := combin.LogGeneralizedBinomial(float64(n), float64(k))
	for m := lo; m <= hi; m++ {
		p := math.Exp(combin.LogGeneralizedBinomial(float64(e), float64(m)) + combin.LogGeneralizedBinomial(float64(n-e), float64(k-m)) - den)
		for s, q := range dist {
			out[s+m] += q * p
		}
	}
	return out
}

// phrase says in words how devices without the update compared.
func (c Contrast) phrase(class string, alpha float64) string {
	switch {
	case c.Controls < c.FleetControls && c.FleetControlsReached == 0:
		return fmt.Sprintf("no comparable %s device without it was observed over the same period, and none of the %d devices of other classes observed then reached it", class, c.FleetControls)
	case c.Controls < c.FleetControls:
		return fmt.Sprintf("no comparable %s device without it was observed over the same period, and %d device(s) of other classes reached it too", class, c.FleetControlsReached)
	case c.Controls == 0:
		return fmt.Sprintf("no comparable %s device without it was observed over the same period", class)
	case c.ControlsReached == 0:
		return fmt.Sprintf("none of the %d comparable %s device(s) without it did over the same period (exact test p = %.3g)", c.Controls, class, c.P)
	case c.P <= alpha:
		return fmt.Sprintf("only %d of the %d comparable %s device(s) without it did over the same period (exact test p = %.3g, at most %.3g)", c.ControlsReached, c.Controls, class, c.P, alpha)
	}
	return fmt.Sprintf("%d of the %d comparable %s device(s) without it did too over the same period (exact test p = %.3g, above %.3g)", c.ControlsReached, c.Controls, class, c.P, alpha)
}

// classTable is a class's devices (sorted by name, as classDevices) with
// their installations and hours with telemetry, and each one's place: a
// contrast goes over every device of the class once per onset hour, and
// reads them here rather than from the maps by name.
type classTable struct {
	devs  []classDevice
	index map[string]int // device name -> place in devs
}

type classDevice struct {
	name     string
	installs []Installation // by time
	hours    []int64        // sorted
}

// classTable returns class's table, built once per report.
func (a *Analyzer) classTable(class string) *classTable {
	if t, ok := a.classTabs[class]; ok {
		return t
	}
	names := a.classDevices[class]
	t := &classTable{devs: make([]classDevice, len(names)), index: make(map[string]int, len(names))}
	for i, d := range names {
		t.devs[i] = classDevice{name: d, installs: a.installs[lower(d)], hours: a.hours[d]}
		t.index[d] = i
	}
	if a.classTabs == nil {
		a.classTabs = map[string]*classTable{}
	}
	a.classTabs[class] = t
	return t
}
