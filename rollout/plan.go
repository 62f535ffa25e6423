package rollout

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"

	"github.com/wardgate/wardgate/trust"
)

// CanaryLabel is the inventory ring label that puts a device first.
const CanaryLabel = "canary"

// Device is one device of the population a rollout goes through.
type Device struct {
	ID string
	// Canary is true for a device labelled ring: canary in the inventory.
	Canary bool
}

// Plan is the rings of one update in one device class and which devices
// each ring holds. Build one with NewPlan.
type Plan struct {
	Digest, Class string
	Rings         []trust.Ring
	// Order is every device ID in rollout order.
	Order []string
	// Bounds[i] is how many devices of Order rings 0..i hold (cumulative).
	Bounds []int
	ring   map[string]int
}

// ErrNoRings: a plan needs at least one ring, the last reaching 100%.
var ErrNoRings = errors.New("rollout: no rings, or the last does not reach 100%")

// NewPlan orders devs for the update digest under key and splits them
// into rings: ring i holds the first ceil(share_i * n) devices (at least
// one device per ring while devices remain, so a small class still has a
// canary), the last ring all of them.
func NewPlan(key []byte, digest, class string, rings []trust.Ring, devs []Device) (*Plan, error) {
	if len(rings) == 0 || rings[len(rings)-1].Share != trust.FullShare {
		return nil, ErrNoRings
	}
	if len(key) == 0 {
		return nil, errors.New("rollout: empty membership key")
	}
	p := &Plan{Digest: digest, Class: class, Rings: rings, Order: Order(key, digest, devs), ring: map[string]int{}}
	n := len(p.Order)
	prev := 0
	for i, r := range rings {
		b := (r.Share*n + trust.FullShare - 1) / trust.FullShare
		if b <= prev {
			b = min(prev+1, n)
		}
		if i == len(rings)-1 {
			b = n
		}
		p.Bounds = append(p.Bounds, b)
		for _, id := range p.Order[prev:b] {
			p.ring[id] = i
		}
		prev = b
	}
	return p, nil
}

// Order returns the device IDs in rollout order: canaries first, then the
// rest, each group by HMAC-SHA256(key, digest NUL id). A device listed
// twice counts once.
func Order(key []byte, digest string, devs []Device) []string {
	type ranked struct {
		id     string
		canary bool
		h      []byte
	}
	rs := make([]ranked, 0, len(devs))
	seen := map[string]bool{}
	for _, d := range devs {
		if seen[d.ID] {
			continue
		}
		seen[d.ID] = true
		m := hmac.New(sha256.New, key)
		m.Write([]byte(digest))
		m.Write([]byte{0})
		m.Write([]byte(d.ID))
		rs = append(rs, ranked{d.ID, d.Canary, m.Sum(nil)})
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.canary != b.canary {
			if a.canary {
				return -1
			}
			return 1
		}
		if c := slices.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.id
	}
	return out
}

// RingOf returns the ring of device id. A device the plan does not know
// (not in the inventory) belongs to the last ring: it is never a canary.
func (p *Plan) RingOf(id string) int {
	if r, ok := p.ring[id]; ok {
		return r
	}
	return len(p.Rings) - 1
}

// Members returns the devices ring i adds (not those of earlier rings).
func (p *Plan) Members(i int) []string {
	if i < 0 || i >= len(p.Bounds) {
		return nil
	}
	lo := 0
	if i > 0 {
		lo = p.Bounds[i-1]
	}
	return p.Order[lo:p.Bounds[i]]
}

// Last is the index of the last ring.
func (p *Plan) Last() int { return len(p.Rings) - 1 }

func (p *Plan) String() string {
	return fmt.Sprintf("rollout of %s to %s: %d devices in rings %v", p.Digest, p.Class, len(p.Order), p.Bounds)
}
