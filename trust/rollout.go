package trust

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FullShare is a share of 100%, in basis points.
const FullShare = 10000

// Rollout is a product's rollout:: section (docs/rollout.md). It says how
// far an admitted update may spread through each device class and when it
// may spread further; it does not change how an update is evaluated, so it
// is not part of Digest (the log keeps the whole file beside each
// evaluation's verdict).
type Rollout struct {
	// Rings apply to every device class without its own entry in Classes.
	Rings []Ring
	// Classes maps a device class to its own rings.
	Classes map[string][]Ring
}

// Ring is one rollout ring. Rings are cumulative: a ring's share counts
// the devices of every ring before it.
type Ring struct {
	// Name names the ring in answers, metrics and log entries.
	Name string
	// Share is the part of the class's devices the ring reaches, in basis
	// points (500 is 5%); the last ring's is FullShare.
	Share int
	// Soak is how long at least MinReporting of the ring's new devices must
	// have run the update, as their own telemetry shows, before the next
	// ring opens.
	Soak time.Duration
	// MinReporting is how many of the ring's new devices must have sent
	// telemetry at least Soak after installing (at least 1; capped at the
	// ring's new devices, see docs/rollout.md).
	MinReporting int
}

// RingsFor returns the rings of class: its own, else the product's.
func (r *Rollout) RingsFor(class string) []Ring {
	if r == nil {
		return nil
	}
	if rs, ok := r.Classes[class]; ok {
		return rs
	}
	return r.Rings
}

func (d *decoder) rollout(n *yaml.Node, field string, classes []string) *Rollout {
	r := &Rollout{Classes: map[string][]Ring{}}
	var ringsNode *yaml.Node
	d.fields(n, field, map[string]func(*yaml.Node, string){
		"rings": func(v *yaml.Node, f string) { ringsNode = v; r.Rings = d.rings(v, f) },
		"classes": func(v *yaml.Node, f string) {
			d.pairs(v, f, func(k, v *yaml.Node, f string) {
				if !slices.Contains(classes, k.Value) {
					d.errorf(k, f, "device class %q is not in device_classes", k.Value)
					return
				}
				d.fields(v, f, map[string]func(*yaml.Node, string){
					"rings": func(v *yaml.Node, f string) { r.Classes[k.Value] = d.rings(v, f) },
				})
				if _, ok := r.Classes[k.Value]; !ok && v.Kind == yaml.MappingNode {
					d.errorf(v, f+".rings", "required; list the class's rings")
				}
			})
		},
	})
	if n.Kind == yaml.MappingNode && ringsNode == nil {
		d.errorf(n, field+".rings", "required; list the rings, the last with share 100%%")
	}
	return r
}

func (d *decoder) rings(n *yaml.Node, field string) []Ring {
	var rs []Ring
	d.list(n, field, func(item *yaml.Node, f string) {
		r := Ring{MinReporting: 1}
		var shareNode *yaml.Node
		d.fields(item, f, map[string]func(*yaml.Node, string){
			"name":  func(v *yaml.Node, f string) { d.nonEmpty(v, f, &r.Name) },
			"share": func(v *yaml.Node, f string) { shareNode = v; r.Share = d.share(v, f) },
			"soak":  func(v *yaml.Node, f string) { d.duration(v, f, &r.Soak) },
			"min_reporting": func(v *yaml.Node, f string) {
				if d.integer(v, f, &r.MinReporting) && r.MinReporting < 1 {
					d.errorf(v, f, "must be at least 1 (no telemetry is no evidence)")
				}
			},
		})
		if item.Kind != yaml.MappingNode {
			return
		}
		if r.Name == "" {
			d.errorf(item, f+".name", "required")
		} else if slices.ContainsFunc(rs, func(o Ring) bool { return o.Name == r.Name }) {
			d.errorf(item, f+".name", "duplicate ring %q", r.Name)
		}
		if shareNode == nil {
			d.errorf(item, f+".share", "required, e.g. 5%%")
		} else if len(rs) > 0 && r.Share > 0 && r.Share <= rs[len(rs)-1].Share {
			d.errorf(shareNode, f+".share", "must be larger than the previous ring's %s (rings are cumulative)", FormatShare(rs[len(rs)-1].Share))
		}
		rs = append(rs, r)
	})
	if n.Kind == yaml.SequenceNode {
		switch {
		case len(rs) == 0:
			d.errorf(n, field, "want at least one ring")
		case rs[len(rs)-1].Share != FullShare && rs[len(rs)-1].Share > 0:
			d.errorf(n.Content[len(n.Content)-1], fmt.Sprintf("%s[%d].share", field, len(rs)-1), "the last ring must reach 100%%, got %s", FormatShare(rs[len(rs)-1].Share))
		}
	}
	return rs
}

// share reads "5%" or "12.5%" (at most two decimals) as basis points.
func (d *decoder) share(n *yaml.Node, field string) int {
	var s string
	d.str(n, field, &s)
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	whole, frac, _ := strings.Cut(num, ".")
	if !ok || whole == "" || len(frac) > 2 || strings.Trim(whole+frac, "0123456789") != "" || len(whole) > 3 {
		if s != "" {
			d.errorf(n, field, "want a percentage such as 5%% or 12.5%%, got %q", s)
		}
		return 0
	}
	w, _ := strconv.Atoi(whole)
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.Atoi(frac)
	bp := w*100 + f
	if bp <= 0 || bp > FullShare {
		d.errorf(n, field, "want more than 0%% and at most 100%%, got %q", s)
		return 0
	}
	return bp
}

// FormatShare writes basis points as a percentage ("5%", "12.5%").
func FormatShare(bp int) string {
	s := strconv.FormatFloat(float64(bp)/100, 'f', -1, 64)
	return s + "%"
}
