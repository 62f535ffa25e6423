package gate

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/rollout"
)

// DefaultInstallRefresh is how often the rollout's view of the
// installations is read again from the store in full (Rollout.InstallRefresh).
const DefaultInstallRefresh = 30 * time.Second

// maxPlans bounds the plans kept (each holds its class's device order).
const maxPlans = 64

// rolloutCache keeps what every admission to a product with rings would
// otherwise rebuild from the whole fleet (BenchmarkRolloutAdmission):
//
//   - the plan of each (update, class): the class's devices filtered from
//     the inventory, ordered (an HMAC each) and cut into rings, rebuilt
//     when the inventory is replaced;
//   - every update's installations, device by device: read from the store
//     in full once, then kept current by the gate's own admissions (added
//     once durable) and read again in full in the background every
//     refresh interval for those recorded elsewhere (egress ingest
//     --installs, another replica); with a change feed (replicas on one
//     PostgreSQL), each installation write another process commits is
//     announced (store.ChangeInstallation) and the view is read again in
//     full at once in the background (stale), announcements that arrive
//     during a read coalescing into one more read.
//
// A view that misses an installation recorded elsewhere for up to the
// refresh interval counts fewer installers: a ring can only widen later,
// never sooner (fail closed). Installations are never deleted, so a full
// read and the additions made meanwhile are merged by keeping the earliest
// time of each.
type rolloutCache struct {
	refresh time.Duration
	read    func(ctx context.Context) ([]egress.Installation, error)

	mu    sync.Mutex
	inv   *egress.Inventory // the plans were built from it
	plans map[[2]string]*rollout.Plan

	imu        sync.RWMutex
	installs   map[string]map[string]time.Time // digest -> lower-case device -> earliest install
	readAt     time.Time                       // when the last full read started; zero before the first
	refreshing bool
	dirty      bool       // installations recorded elsewhere since the last read started
	kicked     bool       // a read for them is running
	loadMu     sync.Mutex // one first read at a time
}

// kickGap spaces the reads that announcements start (one read at a time,
// at most one every kickGap).
const kickGap = 100 * time.Millisecond

func newRolloutCache(read func(ctx context.Context) ([]egress.Installation, error), refresh time.Duration) *rolloutCache {
	if refresh <= 0 {
		refresh = DefaultInstallRefresh
	}
	return &rolloutCache{refresh: refresh, read: read, plans: map[[2]string]*rollout.Plan{}}
}

// plan returns the cached plan of (digest, class) under inv, building it
// with build when there is none.
func (c *rolloutCache) plan(inv *egress.Inventory, digest, class string, build func() (*rollout.Plan, error)) (*rollout.Plan, error) {
	k := [2]string{digest, class}
	c.mu.Lock()
	if c.inv != inv {
		c.inv, c.plans = inv, map[[2]string]*rollout.Plan{}
	}
	p, ok := c.plans[k]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := build()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.inv == inv {
		if len(c.plans) >= maxPlans {
			c.plans = map[[2]string]*rollout.Plan{}
		}
		c.plans[k] = p
	}
	c.mu.Unlock()
	return p, nil
}

// ensure reads every installation from the store the first time, and
// starts a background read when the last is older than the refresh
// interval.
func (c *rolloutCache) ensure(ctx context.Context) error {
	c.imu.RLock()
	loaded, stale := !c.readAt.IsZero(), !c.refreshing && time.Since(c.readAt) >= c.refresh
	c.imu.RUnlock()
	if !loaded {
		c.loadMu.Lock()
		defer c.loadMu.Unlock()
		c.imu.RLock()
		loaded = !c.readAt.IsZero()
		c.imu.RUnlock()
		if loaded {
			return nil
		}
		if err := c.load(ctx); err != nil {
			return err
		}
		c.kick() // announced during the first read
		return nil
	}
	if stale {
		c.imu.Lock()
		start := !c.refreshing
		c.refreshing = true
		c.imu.Unlock()
		if start {
			go func() {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				_ = c.load(rctx) // on an error the view stays as it was; the next admission tries again
				c.imu.Lock()
				c.refreshing = false
				c.imu.Unlock()
			}()
		}
	}
	return nil
}

// load reads every installation and merges them into the view.
func (c *rolloutCache) load(ctx context.Context) error {
	c.imu.Lock()
	c.dirty = false // this read sees what was committed before it
	c.imu.Unlock()
	started := time.Now()
	ins, err := c.read(ctx)
	if err != nil {
		return err
	}
	c.imu.Lock()
	defer c.imu.Unlock()
	if c.installs == nil {
		c.installs = map[string]map[string]time.Time{}
	}
	for _, in := range ins {
		c.addLocked(in)
	}
	c.readAt = started
	return nil
}

// stale notes that another process recorded installations (a
// store.ChangeInstallation): the view is read again in full in the
// background, at once unless a read started by an earlier announcement
// is running (then once more after it). Before the first read nothing is
// read: the first read sees them.
func (c *rolloutCache) stale() {
	c.imu.Lock()
	c.dirty = true
	c.imu.Unlock()
	c.kick()
}

// kick starts the reads of the installations announced (dirty), one at a
// time, unless they are running or the view was never read.
func (c *rolloutCache) kick() {
	c.imu.Lock()
	start := c.dirty && !c.kicked && !c.readAt.IsZero()
	if start {
		c.kicked = true
	}
	c.imu.Unlock()
	if !start {
		return
	}
	go func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			begun := time.Now()
			err := c.load(ctx) // clears dirty when it starts
			cancel()
			c.imu.Lock()
			again := err == nil && c.dirty // on an error the periodic refresh tries again
			if !again {
				c.kicked = false
			}
			c.imu.Unlock()
			if !again {
				return
			}
			time.Sleep(kickGap - time.Since(begun))
		}
	}()
}

// add notes an installation the gate recorded.
func (c *rolloutCache) add(in egress.Installation) {
	c.imu.Lock()
	defer c.imu.Unlock()
	if c.installs != nil {
		c.addLocked(in)
	}
}

func (c *rolloutCache) addLocked(in egress.Installation) {
	m := c.installs[in.Digest]
	if m == nil {
		m = map[string]time.Time{}
		c.installs[in.Digest] = m
	}
	k := strings.ToLower(in.Device)
	if at, ok := m[k]; !ok || in.Time.Before(at) {
		m[k] = in.Time
	}
}

// installView is a rollout.View of one update: its installations from the
// cache, each device's latest telemetry from a fleet report.
type installView struct {
	c      *rolloutCache
	digest string
	seen   map[string]time.Time
}

func (v installView) InstalledAt(id string) (time.Time, bool) {
	v.c.imu.RLock()
	at, ok := v.c.installs[v.digest][strings.ToLower(id)]
	v.c.imu.RUnlock()
	return at, ok
}

func (v installView) SeenAt(id string) (time.Time, bool) {
	t, ok := v.seen[id]
	return t, ok
}
