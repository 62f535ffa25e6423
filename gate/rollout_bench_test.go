package gate_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/evidence"
	"github.com/wardgate/wardgate/gate"
	"github.com/wardgate/wardgate/internal/proccpu"
)

// BenchmarkRolloutAdmission is one admission of a device the rollout
// holds, in a fleet of 100,000 pumps (rings of 20% and 100%, the canary
// ring open) with 50,000 installations in the SQLite store: 20,000 by
// the canaries of the update (each with telemetry), 30,000 of other
// updates. cpu-ns/op is the process's user+system CPU time per admission
// (steadier than ns/op on a shared machine). Before issue 20's caching, every admission ordered the whole
// class (an HMAC per device) and read every installation.
func BenchmarkRolloutAdmission(b *testing.B) {
	const devices, installs, ofUpdate = 100_000, 50_000, 20_000
	devs := make([]egress.Device, devices)
	for i := range devs {
		devs[i] = egress.Device{Name: fmt.Sprintf("PUMP-%06d", i), Class: "infusion-pump", Segment: "clinical"}
	}
	inv, err := egress.NewInventory(devs)
	if err != nil {
		b.Fatal(err)
	}
	r := newRolloutRigInv(b, inv)
	r.shareSeen = true
	a := evidence.Artifact{Digest: r.digest, Vendor: "acme-infusion", Product: "infusion-pump"}
	plan, has, err := r.gate.RolloutPlan(a, "infusion-pump")
	if err != nil || !has || len(plan.Members(0)) != ofUpdate {
		b.Fatalf("plan: %v %v, canary of %d", has, err, len(plan.Members(0)))
	}
	var ins []egress.Installation
	at := r.now.Add(-time.Hour)
	for _, id := range plan.Members(0) {
		ins = append(ins, egress.Installation{Device: id, Digest: r.digest, Product: "infusion-pump", Version: "2.4.0", Time: at})
		r.lastSeen[id] = at.Add(time.Minute)
	}
	other := "sha256:" + fmt.Sprintf("%064x", 1)
	for i := range installs - ofUpdate {
		ins = append(ins, egress.Installation{Device: plan.Order[(i*7)%devices], Digest: other, Product: "infusion-pump", Version: "2.3.0", Time: at.Add(-time.Duration(i) * time.Second)})
	}
	if err := r.st.RecordInstallations(b.Context(), ins); err != nil {
		b.Fatal(err)
	}
	all, err := r.st.Installations(b.Context())
	if err != nil || len(all) != installs {
		b.Fatalf("%d installations stored: %v", len(all), err)
	}
	held := plan.Members(1)[0]
	req := gate.AdmitRequest{Digest: r.digest, Device: evidence.Device{ID: held, Class: "infusion-pump", InstalledVersion: "2.3.0"}}
	check := func() {
		out, err := r.gate.Admit(b.Context(), r.recs, req)
		if err != nil || out.Hold == nil || !slices.Equal(codes(out.Decision), []string{"rollout-hold"}) {
			b.Fatalf("held device: %v %+v", err, out)
		}
	}
	check() // the fleet analysis, once
	var cpu time.Duration
	n := 0
	for b.Loop() {
		c0 := proccpu.Time()
		check()
		cpu += proccpu.Time() - c0
		n++
	}
	// The process's user+system CPU time per admission: the machine is
	// shared, so wall time (ns/op) swings with the load and this does not.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
}
