package egress

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Volume is judged per device and hour (bytes sent to one destination in
// one hour). For a destination a class reached in the baseline window, the
// class's own baseline says what is normal: the per-device hourly volumes
// it sent there during the baseline, on a log scale (volumes spread over
// orders of magnitude and an upload is a multiple of a check-in, not a sum
// added to it). An hour is far outside that baseline when its robust score
//
//	(ln bytes - median) / max(1.4826 * MAD, ln 2 / 2)
//
// is above VolumeScore (default 6) and it is more than twice every hour of
// the baseline. The median and MAD (median absolute deviation, scaled to a
// standard deviation for normal data) ignore the tail of the baseline; the
// second condition puts the tail back, so that uploads the class already
// made in the baseline, give or take a factor of two, are not outside it. The floor on the scale keeps a
// destination whose baseline hours are all alike (NTP's 48 bytes) from
// flagging every change: with it, an hour must be at least 2^3 = 8 times
// the baseline median. A destination reached in fewer than VolumeMinHours
// device-hours in the baseline has no learned volume; it is judged, like a
// destination outside the baseline, by the seed's flat rule: more than
// ExfilBytes in the hour (exfil-volume). Traffic to allowed destinations
// and inside the egress manifest of the release a device runs is never
// judged.

// learned is a class's baseline volume to one destination.
type learned struct {
	median, scale float64 // of ln(bytes per device-hour)
	max           int64
	hours         int
}

// volumeScoreFloor is the smallest scale of a learned volume: ln 2 / 2.
var volumeScoreFloor = math.Ln2 / 2

func (l learned) score(bytes int64) float64 {
	return (math.Log(float64(bytes)) - l.median) / l.scale
}

func (l learned) outside(bytes int64, z float64) bool {
	return bytes/2 > l.max && l.score(bytes) > z
}

// learn builds the learned volumes of every (class, destination) with
// enough baseline device-hours.
func (a *Analyzer) learn() map[[2]string]learned {
	samples := map[[2]string][]float64{}
	maxes := map[[2]string]int64{}
	for k, v := range a.baseVol {
		d, ok := a.inv.Device(k.device)
		if !ok || v <= 0 {
			continue
		}
		cd := [2]string{d.Class, k.dest}
		samples[cd] = append(samples[cd], math.Log(float64(v)))
		maxes[cd] = max(maxes[cd], v)
	}
	out := map[[2]string]learned{}
	for cd, s := range samples {
		if len(s) < a.cfg.Thresholds.VolumeMinHours {
			continue
		}
		m := median(s)
		dev := make([]float64, len(s))
		for i, x := range s {
			dev[i] = math.Abs(x - m)
		}
		out[cd] = learned{median: m, scale: math.Max(1.4826*median(dev), volumeScoreFloor), max: maxes[cd], hours: len(s)}
	}
	return out
}

// hourly is one device's traffic to one destination in one hour.
type hourly struct {
	hour     int64
	bytes, n int64
	urls     []string
	topScore float64
}

// volState is what the volume detections start from, kept up to date
// as groups are applied (Analyzer.vol) so that an incremental analysis
// does not go over every (device, URL, hour) again: the learned volumes,
// the hours to destinations with one, and the hours over the line.
// Applying a baseline group, or a group that changes the destination an
// hour is counted under, drops it; the next report builds it again from
// the aggregates.
type volState struct {
	learned map[[2]string]learned
	// perHour is the traffic of the hours to (class, destination) pairs
	// with a learned volume, per (device, destination, hour); out those of
	// them outside it.
	perHour map[volKey]*hourly
	out     map[volKey]struct{}
	// flat are the hours to the other destinations above ExfilBytes.
	flat map[exfilKey]struct{}
}

// volumeState builds the volume detections' state from the aggregates.
func (a *Analyzer) volumeState() *volState {
	v := &volState{learned: a.learn(), perHour: map[volKey]*hourly{}, out: map[volKey]struct{}{}, flat: map[exfilKey]struct{}{}}
	for k, g := range a.exfil {
		d, ok := a.inv.Device(k.device)
		if !ok {
			continue
		}
		v.add(a, k, d, a.exfilDst[k], g.sum, g.count)
	}
	return v
}

// add counts sent bytes in events, added to the hour k (of device d, to
// dest; a.exfil[k] already counts them).
func (v *volState) add(a *Analyzer, k exfilKey, d *Device, dest string, sent, events int64) {
	if l, ok := v.learned[[2]string{d.Class, dest}]; ok {
		vk := volKey{d.Name, dest, k.hour}
		h := v.perHour[vk]
		if h == nil {
			h = &hourly{hour: k.hour}
			v.perHour[vk] = h
		}
		h.bytes += sent
		h.n += events
		if l.outside(h.bytes, a.cfg.Thresholds.VolumeScore) {
			v.out[vk] = struct{}{}
		} else {
			delete(v.out, vk)
		}
		return
	}
	if a.exfil[k].sum > a.cfg.Thresholds.ExfilBytes {
		v.flat[k] = struct{}{}
	} else {
		delete(v.flat, k)
	}
}

// volumeFindings raises volume-anomaly (learned baseline) and exfil-volume
// (flat rule), attributed to an update by contrast.
func (a *Analyzer) volumeFindings(n *notices) []Finding {
	if a.vol == nil {
		a.vol = a.volumeState()
	}
	learnedVol := a.vol.learned
	// Per (class, destination, device): the hours over the line.
	type devKey struct{ class, dest, device string }
	type devHours struct{ hours []hourly }
	anomalous := map[devKey]*devHours{}
	for k := range a.vol.flat {
		d, _ := a.inv.Device(k.device)
		dest, g := a.exfilDst[k], a.exfil[k]
		dk := devKey{d.Class, dest, d.Name}
		x := anomalous[dk]
		if x == nil {
			x = &devHours{}
			anomalous[dk] = x
		}
		x.hours = append(x.hours, hourly{hour: k.hour, bytes: g.sum, n: g.count, urls: []string{cmp.Or(k.url, dest)}})
	}
	for vk := range a.vol.out {
		h := a.vol.perHour[vk]
		d, _ := a.inv.Device(vk.device)
		l := learnedVol[[2]string{d.Class, vk.dest}]
		h.topScore = l.score(h.bytes)
		dk := devKey{d.Class, vk.dest, d.Name}
		x := anomalous[dk]
		if x == nil {
			x = &devHours{}
			anomalous[dk] = x
		}
		x.hours = append(x.hours, *h)
	}
	// Per (class, destination): onsets, then attribution.
	byDest := map[[2]string][]string{}
	for dk := range anomalous {
		byDest[[2]string{dk.class, dk.dest}] = append(byDest[[2]string{dk.class, dk.dest}], dk.device)
	}
	var fs []Finding
	for cd, devs := range byDest {
		class, dest := cd[0], cd[1]
		slices.Sort(devs)
		l, isLearned := learnedVol[cd]
		behaviour := behaviourExfil
		if isLearned {
			behaviour = behaviourVolume
		}
		onsets := map[string]time.Time{}
		for _, d := range devs {
			hs := anomalous[devKey{class, dest, d}].hours
			slices.SortFunc(hs, func(x, y hourly) int { return cmp.Compare(x.hour, y.hour) })
			// The end of the first hour over the line: an update installed
			// within that hour is in effect.
			onsets[d] = time.Unix(hs[0].hour+3599, 0).UTC()
		}
		at := a.attribute(behaviour, class, onsets, a.dormancy(), nil)
		// Devices by the update they are blamed on ("" for none).
		groups := map[string][]string{}
		for _, d := range devs {
			groups[at.of[d]] = append(groups[at.of[d]], d)
		}
		blamedAny := len(groups) > 1 || groups[""] == nil
		for digest, gd := range groups {
			var cs []Contrast
			for _, c := range at.contrasts {
				if c.Update == digest {
					cs = []Contrast{c.public()}
				}
			}
			if digest == "" && !blamedAny && len(gd) >= a.cfg.Thresholds.FleetMinDevices {
				var first, last time.Time
				var bytes, conns int64
				for _, d := range gd {
					for _, h := range anomalous[devKey{class, dest, d}].hours {
						t := time.Unix(h.hour, 0).UTC()
						if first.IsZero() {
							first, last = t, t
						}
						first, last = minTime(first, t), maxTime(last, t)
						bytes += h.bytes
						conns += h.n
					}
				}
				what := fmt.Sprintf("more than %d bytes in an hour", a.cfg.Thresholds.ExfilBytes)
				if isLearned {
					what = fmt.Sprintf("hours far above the class's baseline there (median %s per device-hour, largest %d bytes)", humanBytes(math.Exp(l.median)), l.max)
				}
				n.add(class, dest, gd, first, last.Add(time.Hour), bytes, conns, at.contrasts,
					fmt.Sprintf("%d %s device(s) sent %s to %s, first on %s, %d bytes in all; %s. It is a change of the class, not of an update.",
						len(gd), class, what, dest, first.Format(time.RFC3339), bytes, a.contrastSummary(class, at)))
				continue
			}
			if isLearned {
				fs = append(fs, a.volumeAnomaly(class, dest, digest, gd, l, cs, func(d string) []hourly { return anomalous[devKey{class, dest, d}].hours }))
				continue
			}
			for _, d := range gd {
				fs = append(fs, a.exfilVolume(class, dest, digest, d, cs, anomalous[devKey{class, dest, d}].hours)...)
			}
		}
	}
	return fs
}

// volumeAnomaly is one finding for the devices of a class whose hours to a
// baseline destination are far outside the learned baseline.
func (a *Analyzer) volumeAnomaly(class, dest, digest string, devs []string, l learned, cs []Contrast, hoursOf func(string) []hourly) Finding {
	var first, last time.Time
	var bytes, conns, top int64
	var topScore float64
	nh := 0
	for _, d := range devs {
		for _, h := range hoursOf(d) {
			t := time.Unix(h.hour, 0).UTC()
			if first.IsZero() {
				first, last = t, t
			}
			first, last = minTime(first, t), maxTime(last, t)
			bytes += h.bytes
			conns += h.n
			top = max(top, h.bytes)
			topScore = math.Max(topScore, h.topScore)
			nh++
		}
	}
	who := fmt.Sprintf("%d %s device(s) (%s)", len(devs), class, strings.Join(devs, ", "))
	why := "no update is blamed: none was in effect within the dormancy window, or comparable devices without it did the same"
	if digest != "" {
		who += " running update " + short(digest)
		why = cs[0].phrase(class, a.cfg.Thresholds.ContrastAlpha)
	}
	return Finding{Code: CodeVolumeAnomaly, Update: digest, Class: class, Devices: devs, Destinations: []string{dest},
		FirstSeen: first, LastSeen: last.Add(time.Hour), Bytes: bytes, Connections: conns, Contrasts: cs,
		Explanation: fmt.Sprintf("%s sent up to %d bytes in an hour to %s (%d hour(s) from %s, %d bytes in all), far above what %s devices sent there in the baseline window: median %s per device-hour over %d device-hours, largest %d bytes (twice that is the floor); robust score up to %.1f, above %.1f. %s.",
			who, top, dest, nh, first.Format(time.RFC3339), bytes, class, humanBytes(math.Exp(l.median)), l.hours, l.max, topScore, a.cfg.Thresholds.VolumeScore, upperFirst(why))}
}

// exfilVolume is the seed's rule as a finding: one per device and URL.
func (a *Analyzer) exfilVolume(class, dest, digest, device string, cs []Contrast, hours []hourly) []Finding {
	type acc struct {
		first, last time.Time
		bytes, n    int64
		hours       int
	}
	m := map[string]*acc{}
	for _, h := range hours {
		t := time.Unix(h.hour, 0).UTC()
		x := m[h.urls[0]]
		if x == nil {
			x = &acc{first: t, last: t}
			m[h.urls[0]] = x
		}
		x.first, x.last = minTime(x.first, t), maxTime(x.last, t)
		x.bytes += h.bytes
		x.n += h.n
		x.hours++
	}
	var fs []Finding
	for url, x := range m {
		why := ""
		if digest != "" {
			why = fmt.Sprintf(" It started while the device ran update %s; %s.", short(digest), cs[0].phrase(class, a.cfg.Thresholds.ContrastAlpha))
		}
		fs = append(fs, Finding{Code: CodeExfilVolume, Update: digest, Class: class, Devices: []string{device}, Destinations: []string{dest},
			FirstSeen: x.first, LastSeen: x.last.Add(time.Hour), Bytes: x.bytes, Connections: x.n, Contrasts: cs,
			Explanation: fmt.Sprintf("%s (%s) sent %d bytes to %s in %d connection(s) over %d hour(s) starting %s, above %d bytes per hour; %s is neither an allowed destination of %s devices nor one whose volume they learned in the baseline window.%s",
				device, class, x.bytes, url, x.n, x.hours, x.first.Format(time.RFC3339), a.cfg.Thresholds.ExfilBytes, dest, class, why)})
	}
	return fs
}

func humanBytes(b float64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.0f bytes", b)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
