package cli

import (
	"path/filepath"
	"time"

	"github.com/wardgate/wardgate/attest"
	"github.com/wardgate/wardgate/rollout"
)

// rolloutKeyFile is the rollout membership key in the state directory
// (32 random bytes, created on first use).
const rolloutKeyFile = "rollout.key"

// newRolloutController keys ring membership with STATE/rollout.key and
// keeps ring changes in j (the verdict log). at, when set, pins the decision
// clock (admit --at); else it is the wall clock read once plus monotonic
// time.
func newRolloutController(state string, j rollout.Journal, at *time.Time) (*rollout.Controller, error) {
	key, err := rollout.LoadKey(filepath.Join(state, rolloutKeyFile))
	if err != nil {
		return nil, err
	}
	clock := rollout.NewClock(nil, nil)
	if at != nil {
		t := *at
		clock = rollout.NewClock(func() time.Time { return t }, func() time.Duration { return 0 })
	}
	return rollout.NewController(key, j, clock)
}

// admitRollout is admit's rollout controller for a device (--device): ring
// changes journalled in the log (in memory with --no-log: every run then
// starts at the first ring), at --evaluation-time when given. A product
// with rings and no fleet inventory in the state directory is then held
// (fail closed: no ring can be computed). Nil without --device.
func admitRollout(cfg admitConfig) func(*attest.Log) (*rollout.Controller, error) {
	if cfg.deviceID == "" {
		return nil
	}
	return func(l *attest.Log) (*rollout.Controller, error) {
		var at *time.Time
		if cfg.at != "" {
			t, err := parseTimeFlag("evaluation-time", cfg.at)
			if err != nil {
				return nil, err
			}
			at = &t
		}
		var j rollout.Journal = &rollout.MemJournal{}
		if l != nil {
			j = rollout.LogJournal{Log: l}
		}
		return newRolloutController(cfg.logFlags.state, j, at)
	}
}
