package adapter_test

import (
	"cmp"
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/console"
	"github.com/wardgate/wardgate/console/adapter"
	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/store"
	"github.com/wardgate/wardgate/store/sqlite"
)

// plotsFromEvents computes an update page's plots from the stored events,
// not from the groups the adapter reads: each installer's traffic to the
// destinations of the update's findings (whenever it happened), and the
// baseline of the class: the 95th percentile (nearest rank) of the bytes
// one device sent to public destinations in an hour of the baseline
// window. The fixture's window starts and ends on the hour, so judging an
// event by its own time is judging its group by its first connection.
func plotsFromEvents(t *testing.T, ctx context.Context, db *sqlite.DB, inv *egress.Inventory, cfg egress.Config, rep egress.Report, digest, class string) ([]console.Contact, console.Baseline) {
	t.Helper()
	ins, err := db.Installations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	installed := map[string]time.Time{} // lower-case device -> first installation
	for _, in := range ins {
		k := strings.ToLower(in.Device)
		if t0, ok := installed[k]; in.Digest == digest && (!ok || in.Time.Before(t0)) {
			installed[k] = in.Time
		}
	}
	dests := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Update == digest {
			for _, d := range f.Destinations {
				dests[d] = true
			}
		}
	}
	type ck struct{ device, dest string }
	contacts := map[ck]*console.Contact{}
	type dh struct {
		device string
		hour   int64
	}
	base := map[dh]int64{}
	err = db.Events(ctx, func(ev *egress.Event) error {
		public := egress.IsPublicIP(ev.RemoteIP)
		if ev.RemoteIPType != "" {
			public = ev.RemoteIPType == "Public"
		}
		dev, ok := inv.Device(ev.DeviceName)
		if ev.ActionType != egress.ActionConnectionSuccess || !public || !ok {
			return nil
		}
		hour := time.Unix(ev.Time.Unix()/3600*3600, 0).UTC()
		if dev.Class == class && !ev.Time.Before(cfg.Baseline.Start) && ev.Time.Before(cfg.Baseline.End) {
			base[dh{dev.Name, hour.Unix()}] += ev.SentBytes
		}
		at, ok := installed[strings.ToLower(dev.Name)]
		dest := egress.Destination(ev.RemoteURL, ev.RemoteIP)
		if !ok || !dests[dest] {
			return nil
		}
		c := contacts[ck{dev.Name, dest}]
		if c == nil {
			c = &console.Contact{Device: dev.Name, Destination: dest, Installed: at, First: ev.Time, Last: ev.Time}
			contacts[ck{dev.Name, dest}] = c
		}
		c.First, c.Last = minT(c.First, ev.Time), maxT(c.Last, ev.Time)
		c.Connections++
		c.Bytes += ev.SentBytes
		if n := len(c.Hours); n > 0 && c.Hours[n-1].Start.Equal(hour) {
			c.Hours[n-1].Connections++
			c.Hours[n-1].Bytes += ev.SentBytes
		} else {
			c.Hours = append(c.Hours, console.Hour{Start: hour, Connections: 1, Bytes: ev.SentBytes})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []console.Contact
	for _, c := range contacts {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(x, y console.Contact) int {
		return cmp.Or(x.Installed.Compare(y.Installed), strings.Compare(x.Device, y.Device), strings.Compare(x.Destination, y.Destination))
	})
	b := console.Baseline{Class: class, Start: cfg.Baseline.Start, End: cfg.Baseline.End}
	for _, d := range inv.Devices {
		if d.Class == class {
			b.ClassDevices++
		}
	}
	var v []int64
	for _, s := range base {
		v = append(v, s)
	}
	if len(v) > 0 {
		slices.Sort(v)
		b.DeviceHourP95, b.DeviceHours, b.HasObservation = v[(95*len(v)+99)/100-1], int64(len(v)), true
	}
	return out, b
}

func minT(x, y time.Time) time.Time {
	if y.Before(x) {
		return y
	}
	return x
}

func maxT(x, y time.Time) time.Time {
	if y.After(x) {
		return y
	}
	return x
}

// checkPlots compares the update page's plots with the events'.
func checkPlots(t *testing.T, e *storyEnv, d console.UpdateDetail) {
	t.Helper()
	rep, err := e.risk.Report(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	contacts, base := plotsFromEvents(t, t.Context(), e.db, e.inv, e.cfg, rep, compromised, "infusion-pump")
	if len(contacts) == 0 || !reflect.DeepEqual(d.Contacts, contacts) {
		t.Errorf("contacts from the groups:\n%+v\nfrom the events:\n%+v", d.Contacts, contacts)
	}
	if d.Baseline != base {
		t.Errorf("baseline from the groups %+v, from the events %+v", d.Baseline, base)
	}
}

// The plots come from the groups the store keeps, read again only where a
// batch changed them, and say what the events say: after a new batch (a
// connection in a group already read, a new hour, baseline traffic that
// arrived late) and after a new installation, the page is the one a new
// adapter builds from scratch.
func TestAdapterPlotsFollowTheStore(t *testing.T) {
	e := newStory(t)
	ctx := t.Context()
	d0, err := e.data.Update(ctx, compromised)
	if err != nil {
		t.Fatal(err)
	}
	checkPlots(t, e, d0)
	read := adapter.GroupsRead(e.data)
	if read == 0 {
		t.Fatal("no group read")
	}
	fresh := func() console.UpdateDetail {
		t.Helper()
		a, err := adapter.New(e.deps)
		if err != nil {
			t.Fatal(err)
		}
		d, err := a.Update(ctx, compromised)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	same := func(when string, got console.UpdateDetail) {
		t.Helper()
		want := fresh()
		for _, f := range []struct {
			name      string
			got, want any
		}{{"summary", got.Summary, want.Summary}, {"findings", got.Findings, want.Findings}, {"devices", got.Devices, want.Devices},
			{"contacts", got.Contacts, want.Contacts}, {"baseline", got.Baseline, want.Baseline}} {
			if !reflect.DeepEqual(f.got, f.want) {
				t.Errorf("%s, the adapter's %s:\n%+v\na new adapter's:\n%+v", when, f.name, f.got, f.want)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s, the adapter and a new one disagree", when)
		}
	}
	same("at first", d0)

	at := func(s string) time.Time { x, _ := time.Parse(time.RFC3339, s); return x }
	ev := func(dev, ts, url, ip string, sent int64) egress.Event {
		return egress.Event{Time: at(ts), DeviceName: dev, ActionType: egress.ActionConnectionSuccess, RemoteURL: url, RemoteIP: netip.MustParseAddr(ip),
			RemoteIPType: "Public", RemotePort: 443, SentBytes: sent}
	}
	batch := []egress.Event{
		ev("HOSP-IOT-PUMP-01", "2026-01-30T09:50:00Z", "raw.githubusercontent.com", "185.199.108.133", 700), // a group read before
		ev("HOSP-IOT-PUMP-02", "2026-02-02T03:10:00Z", "raw.githubusercontent.com", "185.199.108.133", 650), // a new hour
		ev("HOSP-IOT-PUMP-06", "2026-01-10T05:30:00Z", "telemetry.acme-infusion.com", "52.168.117.170", 9_000_000),
		ev("HOSP-IOT-PUMP-06", "2026-01-11T05:30:00Z", "telemetry.acme-infusion.com", "52.168.117.170", 9_000_000),
		ev("HOSP-IOT-PUMP-06", "2026-01-12T05:30:00Z", "telemetry.acme-infusion.com", "52.168.117.170", 9_000_000),
	}
	if _, err := e.db.Ingest(ctx, egress.Source{Name: "late.jsonl", Digest: "sha256:late"}, func(add func(*egress.Event) error) error {
		for i := range batch {
			if err := add(&batch[i]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.analyse(t)
	d1, err := e.data.Update(ctx, compromised)
	if err != nil {
		t.Fatal(err)
	}
	checkPlots(t, e, d1)
	if n := adapter.GroupsRead(e.data) - read; n != int64(len(batch)) {
		t.Errorf("read %d groups for a batch that changed %d", n, len(batch))
	}
	if d1.Baseline == d0.Baseline {
		t.Errorf("the late baseline traffic did not change the baseline %+v", d1.Baseline)
	}
	if c := d1.Contacts[slices.IndexFunc(d1.Contacts, func(c console.Contact) bool { return c.Device == "HOSP-IOT-PUMP-02" })]; !c.Last.Equal(at("2026-02-02T03:10:00Z")) {
		t.Errorf("PUMP-02's contact ends %s", c.Last)
	}
	same("after a batch", d1)

	if err := e.db.RecordInstallation(ctx, egress.Installation{Device: "HOSP-IOT-PUMP-05", Digest: compromised, Product: "infusion-pump", Version: "2.4.1",
		Time: at("2026-02-03T00:00:00Z")}); err != nil {
		t.Fatal(err)
	}
	e.analyse(t)
	d2, err := e.data.Update(ctx, compromised)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(d2.Devices, func(im console.Impact) bool {
		return im.Device == "HOSP-IOT-PUMP-05" && im.Installed.Equal(at("2026-02-03T00:00:00Z"))
	}) {
		t.Errorf("the new installer is not listed: %+v", d2.Devices)
	}
	same("after an installation", d2)
	dev, err := e.data.Device(ctx, "HOSP-IOT-PUMP-05")
	if err != nil || dev.Device.Current.Digest != compromised {
		t.Errorf("PUMP-05's current update: %+v %v", dev.Device.Current, err)
	}
}

// An installation that adds no device to any update's list (a device goes
// back to a release it ran before) does not change the analysis's counts:
// the next page shows it all the same, since every page reads the
// installations recorded after those it holds.
func TestAdapterInstallationsReadAgain(t *testing.T) {
	e := newStory(t)
	ctx := t.Context()
	current := func() string {
		t.Helper()
		d, err := e.data.Device(ctx, "HOSP-IOT-PUMP-01")
		if err != nil {
			t.Fatal(err)
		}
		return d.Device.Current.Digest
	}
	if c := current(); c != compromised {
		t.Fatalf("PUMP-01 runs %s", c)
	}
	d, err := e.data.Device(ctx, "HOSP-IOT-PUMP-01")
	if err != nil {
		t.Fatal(err)
	}
	back := d.Installs[len(d.Installs)-2] // the release before the compromised one
	back.Time = time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC)
	if err := e.db.RecordInstallation(ctx, egress.Installation{Device: "HOSP-IOT-PUMP-01", Digest: back.Digest, Product: back.Product, Version: back.Version, Time: back.Time}); err != nil {
		t.Fatal(err)
	}
	if c := current(); c != back.Digest { // before any analysis
		t.Errorf("after the installation, PUMP-01 runs %s, not %s", c, back.Digest)
	}
	e.analyse(t)
	if c := current(); c != back.Digest {
		t.Errorf("after the analysis, PUMP-01 runs %s, not %s", c, back.Digest)
	}
}

// failingFleet is the egress store with installation reads that fail
// while fail is set, and hang until their context ends while hang is.
type failingFleet struct {
	*sqlite.DB
	fail, hang atomic.Bool
}

func (f *failingFleet) InstallationsSince(ctx context.Context, after int64) ([]egress.Installation, int64, error) {
	if f.hang.Load() {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	if f.fail.Load() {
		return nil, 0, store.ErrUnavailable
	}
	return f.DB.InstallationsSince(ctx, after)
}

// When the store does not answer, the pages go on with the installations
// an earlier page read; with none read yet, the page fails and says why.
func TestAdapterInstallationsUnreadable(t *testing.T) {
	e := newStory(t)
	ctx := t.Context()
	f := &failingFleet{DB: e.db}
	deps := e.deps
	deps.Fleet = f
	d, err := adapter.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	f.fail.Store(true)
	if _, err := d.Device(ctx, "HOSP-IOT-PUMP-01"); !errors.Is(err, store.ErrUnavailable) || !strings.HasPrefix(err.Error(), "installations: ") {
		t.Fatalf("no installations read yet, store down: %v", err)
	}
	f.fail.Store(false)
	dev, err := d.Device(ctx, "HOSP-IOT-PUMP-01")
	if err != nil || dev.Device.Current.Digest != compromised {
		t.Fatalf("store up: %+v %v", dev.Device.Current, err)
	}
	f.fail.Store(true)
	dev, err = d.Device(ctx, "HOSP-IOT-PUMP-01")
	if err != nil || dev.Device.Current.Digest != compromised {
		t.Fatalf("store down again, installations held: %+v %v", dev.Device.Current, err)
	}
	// A store that hangs holds a page up for the budget, not longer.
	defer adapter.SetInstallationsBudget(200 * time.Millisecond)()
	f.hang.Store(true)
	start := time.Now()
	dev, err = d.Device(ctx, "HOSP-IOT-PUMP-01")
	if took := time.Since(start); err != nil || dev.Device.Current.Digest != compromised || took < 200*time.Millisecond || took > 5*time.Second {
		t.Fatalf("store hanging: %+v %v after %s; want the installations held after the 200 ms budget", dev.Device.Current, err, took)
	}
}
