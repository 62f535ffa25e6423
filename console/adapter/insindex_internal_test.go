package adapter

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/wardgate/wardgate/egress"
)

// An index built from installations read in several steps is the one
// built from them all at once, whatever the order they were recorded in,
// and each step leaves the index it started from as it was (snapshots
// hold it).
func TestInsIndexWith(t *testing.T) {
	var devs []egress.Device
	for i := range 6 {
		devs = append(devs, egress.Device{Name: fmt.Sprintf("Dev-%d", i), Class: []string{"pump", "monitor", "hvac"}[i%3]})
	}
	inv, err := egress.NewInventory(devs)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var ins []egress.Installation
	for i := range 40 {
		ins = append(ins, egress.Installation{Device: fmt.Sprintf("DEV-%d", (i*5)%7), Digest: fmt.Sprintf("sha256:%064d", i%4), Product: "p", Version: fmt.Sprint(i % 4),
			Time: t0.Add(time.Duration((i*13)%17) * time.Hour)}) // recorded out of time order; DEV-6 is in no inventory
	}
	whole := newInsIndex(inv).with(ins, 40)
	x := newInsIndex(inv)
	for _, step := range [][2]int{{0, 1}, {1, 9}, {9, 9}, {9, 30}, {30, 40}} {
		before := x.with(nil, x.next) // a copy of the fields, sharing the maps
		snap := deepCopy(x)
		x = x.with(ins[step[0]:step[1]], int64(step[1]))
		if !reflect.DeepEqual(deepCopy(before), snap) {
			t.Fatalf("adding installations %d to %d changed the index they were added to", step[0], step[1])
		}
	}
	if !reflect.DeepEqual(deepCopy(x), deepCopy(whole)) {
		t.Fatalf("index built in steps:\n%+v\nat once:\n%+v", deepCopy(x), deepCopy(whole))
	}
	if got := whole.classes[fmt.Sprintf("sha256:%064d", 1)]; !reflect.DeepEqual(got, []string{"hvac", "monitor", "pump"}) {
		t.Errorf("classes %q, want them sorted", got)
	}
	l := whole.byDevice["dev-0"]
	for i := 1; i < len(l); i++ {
		if l[i].Time.Before(l[i-1].Time) {
			t.Fatalf("dev-0's installations are not in time order: %+v", l)
		}
	}
	if !whole.baseEnd.Equal(t0) {
		t.Errorf("baseEnd %s, want %s", whole.baseEnd, t0)
	}
}

// deepCopy copies what an index holds, so that a later change to the
// maps or lists it shares shows.
func deepCopy(x *insIndex) insIndex {
	c := insIndex{forInv: x.forInv, next: x.next, baseEnd: x.baseEnd, byDevice: map[string][]egress.Installation{},
		firstSeen: map[string]map[string]time.Time{}, classes: map[string][]string{}}
	for k, l := range x.byDevice {
		c.byDevice[k] = append([]egress.Installation(nil), l...)
	}
	for k, m := range x.firstSeen {
		c.firstSeen[k] = map[string]time.Time{}
		for d, t := range m {
			c.firstSeen[k][d] = t
		}
	}
	for k, l := range x.classes {
		c.classes[k] = append([]string(nil), l...)
	}
	return c
}
