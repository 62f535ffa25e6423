package cli

import (
	"path/filepath"
	"time"

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
