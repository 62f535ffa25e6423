package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wardgate/wardgate/store"
)

var _ store.ChangeFeed = (*DB)(nil)

// The change feed (store.ChangeFeed) is PostgreSQL's LISTEN/NOTIFY on one
// channel per schema. Writes that other replicas cache the result of send
// their NOTIFY inside their own transaction, so it is delivered only if
// the write commits, and in commit order. One connection per process, off
// the pools, LISTENs; it is redialled when lost, and each (re)connection
// is delivered as a store.ChangeReset (what was sent while it was down is
// lost). A heartbeat NOTIFYs the channel every Heartbeat: notifications
// are delivered in commit order, so when this process receives its own
// heartbeat sent at T, every change committed before T has been delivered
// (store.ChangeSync, Value T).
const (
	// Heartbeat is how often the feed sends its own ChangeSync.
	Heartbeat = 250 * time.Millisecond
	// subscriberBuffer is how many changes a subscriber may fall behind
	// before it is sent a ChangeReset instead.
	subscriberBuffer = 1024
	// redialMax bounds the wait between two attempts to reconnect.
	redialMax = 2 * time.Second
)

// feed is the process's listener and its subscribers.
type feed struct {
	channel string // the schema's NOTIFY channel
	origin  string // this handle's id, in every payload it sends
	cfg     *pgx.ConnConfig

	startOnce sync.Once
	stop      context.CancelFunc
	done      chan struct{}

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

type subscriber struct {
	c    chan store.Change
	lost bool // a change was dropped: send a ChangeReset before anything else
}

// newFeed names the schema's channel; the listener starts on the first
// Subscribe.
func (db *DB) newFeed(ctx context.Context, cfg *pgxpool.Config) error {
	var schema string
	if err := db.w.QueryRow(ctx, `SELECT current_database() || '.' || current_schema()`).Scan(&schema); err != nil {
		return db.classify("read the schema of", err)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	h := sha256.Sum256([]byte(schema))
	db.feed = &feed{
		channel: "wardgate_changes_" + hex.EncodeToString(h[:12]),
		origin:  hex.EncodeToString(id[:]),
		cfg:     cfg.ConnConfig.Copy(),
		subs:    map[*subscriber]struct{}{},
		done:    make(chan struct{}),
	}
	return nil
}

// Channel is the NOTIFY channel of the store's schema.
func (db *DB) Channel() string { return db.feed.channel }

// Subscribe implements store.ChangeFeed.
func (db *DB) Subscribe(ctx context.Context) <-chan store.Change {
	f := db.feed
	s := &subscriber{c: make(chan store.Change, subscriberBuffer)}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		close(s.c)
		return s.c
	}
	f.subs[s] = struct{}{}
	f.mu.Unlock()
	f.startOnce.Do(func() {
		lctx, cancel := context.WithCancel(context.Background())
		f.stop = cancel
		go db.listen(lctx)
	})
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		if _, ok := f.subs[s]; ok {
			delete(f.subs, s)
			close(s.c)
		}
		f.mu.Unlock()
	}()
	return s.c
}

// Publish implements store.ChangeFeed.
func (db *DB) Publish(ctx context.Context, c store.Change) error {
	if err := c.Validate(); err != nil {
		return err
	}
	_, err := db.w.Exec(ctx, `SELECT pg_notify($1, $2)`, db.feed.channel, db.feed.payload(c))
	return db.classify("announce a change in", err)
}

// notifyTx announces c inside tx: delivered only if tx commits.
func (db *DB) notifyTx(ctx context.Context, tx pgx.Tx, c store.Change) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, db.feed.channel, db.feed.payload(c))
	return err
}

// notifyLog queues, in the log append's transaction (before its COMMIT),
// an announcement of the artifact of every item appended with Notify (once
// each): it is delivered only when the append commits.
func (db *DB) notifyLog(b *pgx.Batch, ops []logOp) {
	seen := map[string]bool{}
	for _, o := range ops {
		for _, it := range o.items {
			if it.Notify && !seen[it.Artifact] {
				seen[it.Artifact] = true
				b.Queue(`SELECT pg_notify($1, $2)`, db.feed.channel, db.feed.payload(store.Change{Kind: store.ChangeLog, Key: it.Artifact}))
			}
		}
	}
}

// payload is KIND TAB ORIGIN TAB KEY TAB VALUE.
func (f *feed) payload(c store.Change) string {
	return string(c.Kind) + "\t" + f.origin + "\t" + c.Key + "\t" + c.Value
}

func parsePayload(p string) (c store.Change, origin string, ok bool) {
	parts := strings.SplitN(p, "\t", 4)
	if len(parts) != 4 {
		return store.Change{}, "", false
	}
	return store.Change{Kind: store.ChangeKind(parts[0]), Key: parts[2], Value: parts[3]}, parts[1], true
}

// closeFeed stops the listener and closes every subscriber's channel.
func (db *DB) closeFeed() {
	f := db.feed
	if f == nil {
		return
	}
	f.mu.Lock()
	f.closed = true
	for s := range f.subs {
		delete(f.subs, s)
		close(s.c)
	}
	f.mu.Unlock()
	f.startOnce.Do(func() { close(f.done) }) // never started
	if f.stop != nil {
		f.stop()
		<-f.done
	}
}

// broadcast hands c to every subscriber without waiting: one whose
// buffer is full loses it and is sent a ChangeReset as soon as it has room.
func (f *feed) broadcast(c store.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs {
		if s.lost {
			select {
			case s.c <- store.Change{Kind: store.ChangeReset, Value: "fell behind"}:
				s.lost = false
			default:
				continue
			}
		}
		select {
		case s.c <- c:
		default:
			s.lost = true
		}
	}
}

// listen keeps a LISTENing connection until ctx ends, redialling with a
// growing pause (up to redialMax) when it is lost, and sends the
// heartbeat while it is up.
func (db *DB) listen(ctx context.Context) {
	f := db.feed
	defer close(f.done)
	pause := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		_ = err // the next ChangeReset says it; the gate counts the outages
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, redialMax)
	}
}

// listenOnce dials, LISTENs, announces the (re)connection, and delivers
// notifications until the connection is lost or ctx ends.
func (db *DB) listenOnce(ctx context.Context) error {
	f := db.feed
	dctx, cancel := context.WithTimeout(ctx, max(f.cfg.ConnectTimeout, time.Second))
	conn, err := pgx.ConnectConfig(dctx, f.cfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{f.channel}.Sanitize()); err != nil {
		return err
	}
	// From here on every commit is delivered; what came before may have
	// been missed.
	f.broadcast(store.Change{Kind: store.ChangeReset, Value: "connected"})
	hctx, stopBeat := context.WithCancel(ctx)
	defer stopBeat()
	go db.heartbeat(hctx)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		c, origin, ok := parsePayload(n.Payload)
		switch {
		case !ok:
			continue // not ours
		case c.Kind == store.ChangeSync:
			if origin == f.origin {
				f.broadcast(c)
			}
		case origin != f.origin:
			f.broadcast(c)
		}
	}
}

// heartbeat sends a ChangeSync (dated with the time it is sent) every
// Heartbeat until ctx ends.
func (db *DB) heartbeat(ctx context.Context) {
	f := db.feed
	t := time.NewTicker(Heartbeat)
	defer t.Stop()
	for {
		sent := time.Now()
		c := store.Change{Kind: store.ChangeSync, Value: sent.Format(time.RFC3339Nano)}
		sctx, cancel := context.WithTimeout(ctx, 4*Heartbeat)
		_, _ = db.w.Exec(sctx, `SELECT pg_notify($1, $2)`, f.channel, f.payload(c)) // a lost one only delays the next
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
