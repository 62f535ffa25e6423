package egress_test

import (
	"testing"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/internal/benchfleet"
)

// BenchmarkReportLargeFleet: the detections over the large fleet the
// console benchmark (console/adapter) runs on (internal/benchfleet):
// 100,000 devices in 10 classes, 10,000 updates, 1,000,000 events, 100
// updates flagged. Each contrast of a new destination goes over the
// class's 10,000 devices per onset hour; only the updates the reaching
// devices ran are contrasted.
func BenchmarkReportLargeFleet(b *testing.B) {
	devs := benchfleet.Inventory()
	inv, err := egress.NewInventory(devs)
	if err != nil {
		b.Fatal(err)
	}
	a, err := egress.NewAnalyzer(inv, benchfleet.Installations(), benchfleet.Config())
	if err != nil {
		b.Fatal(err)
	}
	if err := benchfleet.EachEvent(devs, func(ev *egress.Event) error { a.Add(ev); return nil }); err != nil {
		b.Fatal(err)
	}
	var rep egress.Report
	b.ResetTimer()
	for b.Loop() {
		rep = a.Report()
	}
	if len(rep.Findings) == 0 {
		b.Fatal("no findings: the flagged updates' destinations were not found")
	}
	b.ReportMetric(float64(len(rep.Findings)), "findings")
}
