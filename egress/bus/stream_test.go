package bus_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardgate/wardgate/egress"
	"github.com/wardgate/wardgate/egress/bus"
)

// An operator's stream is used as it is: wardgate changes none of its
// settings, and the consumer works on it.
func TestExistingStreamLeftUnchanged(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	ctx := t.Context()
	op := jetstream.StreamConfig{Name: bus.DefaultStream, Subjects: []string{"wardgate.telemetry.>", "site.other"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, MaxBytes: 64 << 20, MaxAge: 72 * time.Hour, MaxMsgs: 100000, Discard: jetstream.DiscardNew, Duplicates: 5 * time.Minute,
		Description: "the operator's"}
	if _, err := js.CreateStream(ctx, op); err != nil {
		t.Fatal(err)
	}
	dead := jetstream.StreamConfig{Name: bus.DefaultDeadLetterStream, Subjects: []string{"wardgate.deadletter.*.*"}, MaxAge: 24 * time.Hour, MaxBytes: 1 << 20}
	if _, err := js.CreateStream(ctx, dead); err != nil {
		t.Fatal(err)
	}
	info := func(name string) jetstream.StreamConfig {
		t.Helper()
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config
	}
	beforeT, beforeD := info(bus.DefaultStream), info(bus.DefaultDeadLetterStream)
	// Settings asked for creation do not touch an existing stream.
	c := r.consumer(js, bus.WithStreamSettings(bus.StreamSettings{Replicas: 1, MaxBytes: 1 << 30, MaxAge: time.Hour}))
	stop := run(c)
	bodies, want := batches(t, r.inv, 1, 20)
	r.publish(js, bus.Subject(egress.FormatDefenderJSON), bodies[0])
	settled(t, js, c)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := c.Stats(); got.Batches != 1 || got.Events != uint64(want) || r.storedEvents() != want {
		t.Fatalf("stats %+v, %d stored: want 1 batch of %d events", got, r.storedEvents(), want)
	}
	for _, s := range []struct {
		name   string
		before jetstream.StreamConfig
	}{{bus.DefaultStream, beforeT}, {bus.DefaultDeadLetterStream, beforeD}} {
		after := info(s.name)
		if after.MaxBytes != s.before.MaxBytes || after.MaxAge != s.before.MaxAge || after.MaxMsgs != s.before.MaxMsgs || after.Discard != s.before.Discard ||
			after.Duplicates != s.before.Duplicates || after.Replicas != s.before.Replicas || after.Retention != s.before.Retention ||
			after.Description != s.before.Description || !slices.Equal(after.Subjects, s.before.Subjects) {
			t.Errorf("%s changed:\nbefore %+v\nafter  %+v", s.name, s.before, after)
		}
	}
	if got := info(bus.DefaultStream); got.MaxBytes != 64<<20 || got.MaxAge != 72*time.Hour || got.Description != "the operator's" {
		t.Errorf("telemetry stream %+v: not the operator's settings", got)
	}
}

// A stream whose subjects do not hold wardgate's is refused, by name, and
// left as it is.
func TestExistingStreamSubjectsNotCovered(t *testing.T) {
	for _, tc := range []struct {
		stream   string
		subjects []string
		missing  string
	}{
		{bus.DefaultStream, []string{"wardgate.telemetry.defender-json", "wardgate.telemetry.zeek-json"}, "wardgate.telemetry.ocsf-json"},
		{bus.DefaultStream, []string{"other.>"}, "wardgate.telemetry.defender-json"},
		{bus.DefaultDeadLetterStream, []string{"wardgate.deadletter.telemetry.too-large"}, "wardgate.deadletter.telemetry.wrong-subject"},
	} {
		t.Run(tc.stream+"/"+tc.subjects[0], func(t *testing.T) {
			r := newRig(t)
			_, js := r.connect()
			if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: tc.stream, Subjects: tc.subjects}); err != nil {
				t.Fatal(err)
			}
			_, err := bus.New(t.Context(), js, r.ingest)
			if !errors.Is(err, bus.ErrSubjectsNotCovered) || !strings.Contains(err.Error(), tc.stream) || !strings.Contains(err.Error(), tc.missing) {
				t.Fatalf("err %v: want ErrSubjectsNotCovered naming %s and %s", err, tc.stream, tc.missing)
			}
			st, err := js.Stream(t.Context(), tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.CachedInfo().Config.Subjects; !slices.Equal(got, tc.subjects) {
				t.Fatalf("subjects changed to %q", got)
			}
		})
	}
}

// Absent streams are created with the settings given (defaults: 1
// replica, no limits).
func TestStreamCreatedWithSettings(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	r.consumer(js, bus.WithStreamSettings(bus.StreamSettings{Replicas: 1, MaxBytes: 8 << 20, MaxAge: 48 * time.Hour}))
	st, err := js.Stream(t.Context(), bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	got := st.CachedInfo().Config
	if got.Replicas != 1 || got.MaxBytes != 8<<20 || got.MaxAge != 48*time.Hour || got.Discard != jetstream.DiscardNew ||
		got.Retention != jetstream.WorkQueuePolicy || !slices.Equal(got.Subjects, []string{"wardgate.telemetry.>"}) {
		t.Fatalf("telemetry stream %+v", got)
	}
	dl, err := js.Stream(t.Context(), bus.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if d := dl.CachedInfo().Config; d.Replicas != 1 || d.MaxAge != bus.DeadLetterMaxAge || d.MaxBytes != -1 {
		t.Fatalf("dead-letter stream %+v", d)
	}

	r2 := newRig(t)
	_, js2 := r2.connect()
	r2.consumer(js2)
	st, err = js2.Stream(t.Context(), bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config; got.Replicas != 1 || got.MaxBytes != -1 || got.MaxAge != 0 {
		t.Fatalf("default telemetry stream %+v: want 1 replica, no limits", got)
	}
}

// The replicas asked are passed to the server: a single server refuses 3,
// and the error says so.
func TestStreamReplicasPassedThrough(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	_, err := bus.New(t.Context(), js, r.ingest, bus.WithStreamSettings(bus.StreamSettings{Replicas: 3}))
	if err == nil || !strings.Contains(err.Error(), "telemetry stream WARDGATE_TELEMETRY: creating it with 3 replicas") ||
		!strings.Contains(err.Error(), "replicas > 1 not supported in non-clustered mode") {
		t.Fatalf("err %v", err)
	}
	if _, err := js.Stream(t.Context(), bus.DefaultStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream after a refused creation: %v", err)
	}
}

func TestStreamSettingsRejected(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	for _, tc := range []struct {
		s    bus.StreamSettings
		want string
	}{
		{bus.StreamSettings{Replicas: 0}, "telemetry stream replicas 0: want 1 to 5"},
		{bus.StreamSettings{Replicas: 6}, "telemetry stream replicas 6: want 1 to 5"},
		{bus.StreamSettings{Replicas: 1, MaxBytes: -1}, "telemetry stream max bytes -1: want 0 (no limit) or more"},
		{bus.StreamSettings{Replicas: 1, MaxAge: -time.Second}, "telemetry stream max age -1s: want 0 (no limit) or more"},
	} {
		if err := tc.s.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
		if _, err := bus.New(t.Context(), js, r.ingest, bus.WithStreamSettings(tc.s)); err == nil || err.Error() != "bus: "+tc.want {
			t.Errorf("%+v: New: %v", tc.s, err)
		}
	}
	if _, err := js.Stream(t.Context(), bus.DefaultStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream after refused settings: %v", err)
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"wardgate.telemetry.>", "wardgate.telemetry.auto", true},
		{"wardgate.>", "wardgate.telemetry.auto", true},
		{">", "wardgate.telemetry.auto", true},
		{"*.telemetry.*", "wardgate.telemetry.zeek-json", true},
		{"wardgate.telemetry.zeek-json", "wardgate.telemetry.zeek-json", true},
		{"wardgate.telemetry.>", "wardgate.telemetry", false},
		{"wardgate.telemetry.*", "wardgate.telemetry.a.b", false},
		{"wardgate.telemetry.zeek-json", "wardgate.telemetry.zeek-tsv", false},
		{"wardgate.telemetry", "wardgate.telemetry.auto", false},
		{"wardgate.>.x", "wardgate.telemetry.x", false},
	} {
		if got := bus.SubjectMatches(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("%s ~ %s: %v, want %v", tc.pattern, tc.subject, got, tc.want)
		}
	}
}
