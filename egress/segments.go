package egress

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// segmentFindings raises segmentation-violation per device and segment,
// attributed to an update when the class's devices running it enter the
// segment and comparable devices without it do not.
func (a *Analyzer) segmentFindings() []Finding {
	bySeg := map[[2]string]map[string]time.Time{}
	for k, c := range a.segv {
		cs := [2]string{c.class, k.segment}
		if bySeg[cs] == nil {
			bySeg[cs] = map[string]time.Time{}
		}
		bySeg[cs][k.device] = c.first
	}
	var fs []Finding
	for cs, onsets := range bySeg {
		class, seg := cs[0], cs[1]
		at := a.attribute(behaviourReach, class, onsets, a.dormancy(), nil)
		for device := range onsets {
			c := a.segv[segKey{device, seg}]
			dev, _ := a.inv.Device(device)
			digest := at.of[device]
			why := ""
			var contrasts []Contrast
			for _, x := range at.contrasts {
				if x.Update == digest {
					contrasts = []Contrast{x.public()}
					why = fmt.Sprintf(" It started while the device ran update %s; %s.", short(digest), x.phrase(class, a.cfg.Thresholds.ContrastAlpha))
				}
			}
			allowed := a.cfg.Classes[dev.Class].AllowedSegments
			fs = append(fs, Finding{Code: CodeSegmentationViolation, Update: digest, Class: dev.Class, Devices: []string{dev.Name}, Destinations: sortedKeys(c.targets),
				FirstSeen: c.first, LastSeen: c.last, Bytes: c.bytes, Connections: c.n, Contrasts: contrasts,
				Explanation: fmt.Sprintf("%s (%s, segment %s) reached segment %s (%s) %d time(s) since %s; %s devices may reach only %s.%s",
					dev.Name, dev.Class, dev.Segment, seg, strings.Join(sortedKeys(c.targets), ", "), c.n, c.first.Format(time.RFC3339), dev.Class,
					strings.Join(append([]string{dev.Segment}, allowed...), ", "), why)})
		}
	}
	return fs
}

// outsideFindings raises expected-egress: devices running a release with
// a vendor egress manifest reach a destination outside it. The manifest
// is the release's own baseline, so it needs no dormancy and no observed
// devices without the release; but when comparable devices without the
// release reach the destination as often (a fleet change), the release is
// not blamed.
func (a *Analyzer) outsideFindings() []Finding {
	type key struct{ digest, class, dest string }
	type acc struct {
		devices     []string
		first, last time.Time
		bytes, n    int64
		targets     map[string]bool
	}
	m := map[key]*acc{}
	for k, c := range a.outside {
		x := m[key{k.digest, c.class, k.dest}]
		if x == nil {
			x = &acc{first: c.first, last: c.last, targets: map[string]bool{}}
			m[key{k.digest, c.class, k.dest}] = x
		}
		x.devices = append(x.devices, k.device)
		x.first, x.last = minTime(x.first, c.first), maxTime(x.last, c.last)
		x.bytes += c.bytes
		x.n += c.n
		for t := range c.targets {
			x.targets[t] = true
		}
	}
	reach := map[[2]string]map[string]time.Time{}
	for ck, c := range a.contacts {
		cd := [2]string{c.class, ck.dest}
		if reach[cd] == nil {
			reach[cd] = map[string]time.Time{}
		}
		reach[cd][ck.device] = c.first
	}
	var fs []Finding
	for k, x := range m {
		c := a.contrast(k.class, reach[[2]string{k.class, k.dest}], k.digest, 0, nil)
		c.Behaviour = behaviourReach
		if c.ControlsReached > 0 && c.P > a.cfg.Thresholds.ContrastAlpha {
			continue // devices without the release reach it too: not the release's doing
		}
		slices.Sort(x.devices)
		fs = append(fs, Finding{Code: CodeExpectedEgress, Update: k.digest, Class: k.class, Devices: x.devices, Destinations: []string{k.dest},
			FirstSeen: x.first, LastSeen: x.last, Bytes: x.bytes, Connections: x.n, Contrasts: []Contrast{c.public()},
			Explanation: fmt.Sprintf("%d device(s) (%s) running update %s reached %s (%s) since %s, which the vendor's signed egress manifest for that release does not list; %d connection(s), %d bytes sent. Of the comparable %s devices without the release, %s.",
				len(x.devices), strings.Join(x.devices, ", "), short(k.digest), k.dest, strings.Join(sortedKeys(x.targets), ", "), x.first.Format(time.RFC3339), x.n, x.bytes,
				k.class, controlsPhrase(c))})
	}
	return fs
}

func controlsPhrase(c Contrast) string {
	switch {
	case c.Controls == 0:
		return "none was observed over the same period"
	case c.ControlsReached == 0:
		return fmt.Sprintf("none of the %d observed over the same period reached it", c.Controls)
	}
	return fmt.Sprintf("%d of the %d observed over the same period reached it (exact test p = %.3g)", c.ControlsReached, c.Controls, c.P)
}
