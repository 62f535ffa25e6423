package store_test

import (
	"errors"
	"testing"

	"github.com/wardgate/wardgate/store"
)

func TestCheckSequence(t *testing.T) {
	head := store.Checkpoint{Origin: "o", Size: 2, Root: []byte{1}, Note: []byte("n")}
	entries := func(idx ...uint64) []store.LogEntry {
		var es []store.LogEntry
		for _, i := range idx {
			es = append(es, store.LogEntry{Index: i})
		}
		return es
	}
	cp := func(origin string, size uint64, root byte, note string) store.Checkpoint {
		return store.Checkpoint{Origin: origin, Size: size, Root: []byte{root}, Note: []byte(note)}
	}
	for _, tc := range []struct {
		name  string
		fresh bool
		items int
		b     store.LogBatch
		want  string // "" for nil
	}{
		{"continues", false, 2, store.LogBatch{Entries: entries(2, 3), Checkpoint: cp("o", 4, 2, "n")}, ""},
		{"keeps the head", false, 0, store.LogBatch{Checkpoint: head}, ""},
		{"first checkpoint", true, 0, store.LogBatch{Checkpoint: cp("new", 2, 9, "n")}, ""},
		{"an entry missing", false, 2, store.LogBatch{Entries: entries(2), Checkpoint: cp("o", 4, 2, "n")}, "store: log append out of sequence: 1 entries for 2 items"},
		{"a hole", false, 2, store.LogBatch{Entries: entries(2, 4), Checkpoint: cp("o", 4, 2, "n")}, "store: log append out of sequence: entry 4 where the log needs 3"},
		{"wrong size", false, 1, store.LogBatch{Entries: entries(2), Checkpoint: cp("o", 4, 2, "n")}, "store: log append out of sequence: checkpoint of size 4 after 1 entries on a log of 2"},
		{"unsigned", false, 1, store.LogBatch{Entries: entries(2), Checkpoint: cp("o", 3, 2, "")}, "store: log append out of sequence: unsigned checkpoint"},
		{"other origin", false, 1, store.LogBatch{Entries: entries(2), Checkpoint: cp("p", 3, 2, "n")}, `store: log append out of sequence: checkpoint origin "p" on the log "o"`},
		{"new root, no entries", false, 0, store.LogBatch{Checkpoint: cp("o", 2, 7, "n")}, "store: log append out of sequence: a new root with no new entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := store.CheckSequence(head, tc.fresh, tc.items, tc.b)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, store.ErrSequence) || err.Error() != tc.want {
				t.Fatalf("err %v, want %s", err, tc.want)
			}
		})
	}
}
