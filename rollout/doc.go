// Package rollout decides how far an admitted update may spread through a
// device class: rollout rings (canary, early, broad) gated by what the
// devices that installed it then do on the network.
//
// Ring membership is a pure function (Order, NewPlan): the devices
// labelled ring: canary in the inventory first, then the rest ordered by
// an HMAC-SHA256 of (update digest, device ID) under a service key, so
// the same devices are not always first. A ring widens (Decide) only when
// at least min_reporting of its new devices installed the update and sent
// telemetry at least its soak time after installing, the decision time is
// past that too, and the update's fleet risk state is clean; suspicious
// pauses, quarantined stops. Every change is a Change, signed into the
// verdict log (Journal), and the state is rebuilt from those entries
// (Replay): the rollout keeps no state of its own.
//
// Imports: trust (the rings), attest (the log), evidence (risk states).
// Must not import net/http server types, cobra, server/ or gate/.
package rollout
