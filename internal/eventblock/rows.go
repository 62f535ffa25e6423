package eventblock

import "github.com/wardgate/wardgate/egress"

// Rows is a store's answer to a query, as database/sql's and pgx's rows
// both are.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// MergeRows is Merge over rows of (seq, first, data), ordered by first
// then seq. fromFn reports that err is fn's own, returned as fn gave it,
// not the store's or a block's.
func MergeRows(rows Rows, fn func(*egress.Event) error) (fromFn bool, err error) {
	var fnErr error
	err = Merge(func() (Stored, bool, error) {
		var s Stored
		if !rows.Next() {
			return s, false, rows.Err()
		}
		err := rows.Scan(&s.Seq, &s.First, &s.Data)
		return s, err == nil, err
	}, func(ev *egress.Event) error {
		fnErr = fn(ev)
		return fnErr
	})
	return err != nil && err == fnErr, err
}

// GroupRows adds to gr every event of the blocks of rows (one column: a
// block's data), in any order.
func GroupRows(rows Rows, gr *egress.Grouper) error {
	var ev egress.Event
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return err
		}
		b, err := Decode(data)
		if err != nil {
			return err
		}
		for i := range b.Len() {
			b.Event(i, &ev)
			gr.Add(ev.DeviceName, &ev)
		}
	}
	return rows.Err()
}
