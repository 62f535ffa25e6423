package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardgate/wardgate/egress"
)

// Subjects and names on the bus.
const (
	// SubjectPrefix starts every telemetry subject: SubjectPrefix+format.
	SubjectPrefix = "wardgate.telemetry."
	// DeadLetterPrefix starts every dead-letter subject:
	// DeadLetterPrefix+reason.
	DeadLetterPrefix = "wardgate.deadletter.telemetry."
	// DefaultStream holds the telemetry (subjects SubjectPrefix+">").
	DefaultStream = "WARDGATE_TELEMETRY"
	// DefaultDeadLetterStream holds dead letters (DeadLetterPrefix+">").
	DefaultDeadLetterStream = "WARDGATE_TELEMETRY_DEAD"
	// DefaultDurable is the durable consumer's name; replicas share it.
	DefaultDurable = "wardgate"
	// DefaultMaxBytes is the largest message ingested: NATS's default
	// max_payload.
	DefaultMaxBytes = 1 << 20
	// DefaultAckWait is how long the server waits for an acknowledgement
	// before it redelivers.
	DefaultAckWait = 30 * time.Second
	// DefaultRetryDelay is the first delay after a transient failure; it
	// doubles with each delivery, up to MaxRetryDelay.
	DefaultRetryDelay = time.Second
	// MaxRetryDelay bounds the delay after a transient failure.
	MaxRetryDelay = time.Minute
	// DeadLetterMaxAge is how long dead letters are kept.
	DeadLetterMaxAge = 30 * 24 * time.Hour
)

// Headers of a dead letter. The body is the original message's.
const (
	// ReasonHeader holds the reason code (Reason*).
	ReasonHeader = "Wardgate-Reason"
	// DetailHeader holds a sentence about what is wrong.
	DetailHeader = "Wardgate-Detail"
	// SubjectHeader holds the subject the message was published on.
	SubjectHeader = "Wardgate-Subject"
	// SequenceHeader holds the message's sequence in the telemetry stream.
	SequenceHeader = "Wardgate-Stream-Sequence"
)

// Reason codes of dead letters. They never change meaning.
const (
	// ReasonWrongSubject: the subject names no telemetry format.
	ReasonWrongSubject = "wrong-subject"
	// ReasonTooLarge: the body is over the consumer's limit.
	ReasonTooLarge = "too-large"
	// ReasonUnknownFormat: the content matches no supported format.
	ReasonUnknownFormat = "unknown-format"
	// ReasonNoEvents: the body is empty or holds no connection event in
	// the subject's format.
	ReasonNoEvents = "no-events"
)

// Subject is the subject telemetry in format f is published on.
func Subject(f egress.Format) string { return SubjectPrefix + string(f) }

// Subjects lists the subject of every format, auto included (detected
// from the content, as POST /v1/telemetry does without a format header).
func Subjects() []string {
	s := make([]string, len(egress.Formats))
	for i, f := range egress.Formats {
		s[i] = Subject(f)
	}
	return s
}

// Reasons lists every dead-letter reason code.
var Reasons = []string{ReasonWrongSubject, ReasonTooLarge, ReasonUnknownFormat, ReasonNoEvents}

// DeadLetterSubjects lists the subject of every dead-letter reason.
func DeadLetterSubjects() []string {
	s := make([]string, len(Reasons))
	for i, r := range Reasons {
		s[i] = DeadLetterPrefix + r
	}
	return s
}

// formatOf is the format a subject names.
func formatOf(subject string) (egress.Format, bool) {
	name, ok := strings.CutPrefix(subject, SubjectPrefix)
	if !ok {
		return "", false
	}
	f, err := egress.ParseFormat(name)
	return f, err == nil
}

// IngestFunc commits one batch: egress.Ingest, and whatever must see the
// batch afterwards (the server's IngestTelemetry invalidates the risk
// cache). It returns only once the batch is committed or failed.
type IngestFunc func(ctx context.Context, src egress.Source, body io.Reader, format egress.Format) (egress.IngestResult, error)

// Stats counts what a Consumer did since it started.
type Stats struct {
	Batches    uint64 // messages whose batch was added
	Duplicates uint64 // messages whose batch was there before (redeliveries)
	Events     uint64 // events stored
	Dead       uint64 // messages dead-lettered
	Retried    uint64 // transient failures (negatively acknowledged)
}

// Consumer reads telemetry from JetStream; build it with New, run it with
// Run.
type Consumer struct {
	js     jetstream.JetStream
	ingest IngestFunc
	cfg    config
	cons   jetstream.Consumer

	batches, duplicates, events, dead, retried atomic.Uint64

	// beforeAck, when set (tests), runs after a batch is committed and
	// before its acknowledgement; false skips the acknowledgement and
	// stops Run at once, as a crash would.
	beforeAck func(jetstream.Msg) bool
}

type config struct {
	stream, deadStream, durable string
	maxBytes                    int
	ackWait, retry              time.Duration
	log                         *slog.Logger
	settings                    StreamSettings
	settingsGiven               bool
}

// Option configures a Consumer.
type Option func(*config) error

// WithLogger logs dead letters and transient failures (the default
// discards).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("bus: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithStreams names the telemetry and dead-letter streams (DefaultStream,
// DefaultDeadLetterStream).
func WithStreams(telemetry, deadLetter string) Option {
	return func(c *config) error {
		if telemetry == "" || deadLetter == "" || telemetry == deadLetter {
			return fmt.Errorf("bus: streams %q and %q: want two different names", telemetry, deadLetter)
		}
		c.stream, c.deadStream = telemetry, deadLetter
		return nil
	}
}

// WithDurable names the durable consumer (DefaultDurable).
func WithDurable(name string) Option {
	return func(c *config) error {
		if name == "" || strings.ContainsAny(name, ".*> \t") {
			return fmt.Errorf("bus: durable name %q: want a non-empty name without '.', '*', '>' or spaces", name)
		}
		c.durable = name
		return nil
	}
}

// WithMaxBytes is the largest body ingested (DefaultMaxBytes); a larger
// message is dead-lettered as too-large.
func WithMaxBytes(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("bus: message limit %d not positive", n)
		}
		c.maxBytes = n
		return nil
	}
}

// WithAckWait is how long the server waits for an acknowledgement before
// it redelivers (DefaultAckWait).
func WithAckWait(d time.Duration) Option {
	return func(c *config) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("bus: ack wait %s below 100ms", d)
		}
		c.ackWait = d
		return nil
	}
}

// WithRetryDelay is the first delay after a transient failure
// (DefaultRetryDelay); it doubles per delivery up to MaxRetryDelay.
func WithRetryDelay(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 || d > MaxRetryDelay {
			return fmt.Errorf("bus: retry delay %s: want more than 0 and at most %s", d, MaxRetryDelay)
		}
		c.retry = d
		return nil
	}
}

// StreamSettings are the settings of the streams wardgate creates when
// they are absent; an existing stream is used as it is (New).
type StreamSettings struct {
	// Replicas of the telemetry and dead-letter streams, 1 to
	// MaxReplicas (DefaultReplicas). More than 1 needs a JetStream cluster.
	Replicas int
	// MaxBytes bounds the telemetry stream's size; once full, new
	// publications are refused (the publisher sees the error) and nothing
	// unconsumed is dropped. 0: no limit (the default).
	MaxBytes int64
	// MaxAge is how long an unconsumed message is kept in the telemetry
	// stream. 0: no limit (the default).
	MaxAge time.Duration
}

// DefaultReplicas is the replicas of the streams wardgate creates.
const DefaultReplicas = 1

// MaxReplicas is JetStream's largest replica count.
const MaxReplicas = 5

// Validate checks the settings.
func (s StreamSettings) Validate() error {
	var errs []error
	if s.Replicas < 1 || s.Replicas > MaxReplicas {
		errs = append(errs, fmt.Errorf("telemetry stream replicas %d: want 1 to %d", s.Replicas, MaxReplicas))
	}
	if s.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("telemetry stream max bytes %d: want 0 (no limit) or more", s.MaxBytes))
	}
	if s.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("telemetry stream max age %s: want 0 (no limit) or more", s.MaxAge))
	}
	return errors.Join(errs...)
}

// WithStreamSettings sets the streams' settings at creation (replicas 1,
// no byte or age limit by default). They never change an existing stream.
func WithStreamSettings(s StreamSettings) Option {
	return func(c *config) error {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("bus: %w", err)
		}
		c.settings, c.settingsGiven = s, true
		return nil
	}
}

// ErrSubjectsNotCovered: an existing stream does not hold every subject
// wardgate consumes (or dead-letters) on; wardgate does not change it.
var ErrSubjectsNotCovered = errors.New("existing stream does not cover wardgate's subjects")

// New makes sure the telemetry stream, the dead-letter stream and the
// durable pull consumer exist on js, and returns a Consumer that hands
// each message to ingest.
//
// A stream that exists is used as it is (with a warning when settings
// given differ from its own) (replicas, limits, retention are
// the operator's): New only checks that its subjects cover wardgate's and
// refuses it with ErrSubjectsNotCovered otherwise. A stream that is absent
// is created with the StreamSettings (WithStreamSettings).
func New(ctx context.Context, js jetstream.JetStream, ingest IngestFunc, opts ...Option) (*Consumer, error) {
	if js == nil || ingest == nil {
		return nil, errors.New("bus: nil JetStream or ingest function")
	}
	c := &Consumer{js: js, ingest: ingest, cfg: config{stream: DefaultStream, deadStream: DefaultDeadLetterStream, durable: DefaultDurable,
		maxBytes: DefaultMaxBytes, ackWait: DefaultAckWait, retry: DefaultRetryDelay, log: slog.New(slog.DiscardHandler),
		settings: StreamSettings{Replicas: DefaultReplicas}}}
	for _, o := range opts {
		if err := o(&c.cfg); err != nil {
			return nil, err
		}
	}
	set := c.cfg.settings
	// Work-queue retention: a message leaves the stream once acknowledged
	// or terminated; what is kept lives in the store (and dead letters in
	// their own stream). A full stream refuses new messages rather than
	// dropping unconsumed ones.
	maxBytes := set.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	if err := c.ensureStream(ctx, "telemetry stream", jetstream.StreamConfig{Name: c.cfg.stream, Subjects: []string{SubjectPrefix + ">"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, Replicas: set.Replicas,
		MaxBytes: maxBytes, MaxAge: set.MaxAge, Discard: jetstream.DiscardNew}, Subjects()); err != nil {
		return nil, err
	}
	if err := c.ensureStream(ctx, "dead-letter stream", jetstream.StreamConfig{Name: c.cfg.deadStream, Subjects: []string{DeadLetterPrefix + ">"},
		Retention: jetstream.LimitsPolicy, Storage: jetstream.FileStorage, MaxAge: DeadLetterMaxAge, Duplicates: 2 * time.Minute,
		MaxBytes: -1, Replicas: set.Replicas}, DeadLetterSubjects()); err != nil {
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, c.cfg.stream, jetstream.ConsumerConfig{Durable: c.cfg.durable, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: c.cfg.ackWait, MaxDeliver: -1, DeliverPolicy: jetstream.DeliverAllPolicy, FilterSubject: SubjectPrefix + ">", MaxAckPending: 256})
	if err != nil {
		return nil, fmt.Errorf("durable consumer %s: %w", c.cfg.durable, err)
	}
	c.cons = cons
	return c, nil
}

// ensureStream creates the stream of want when it is absent; when it
// exists, it is left exactly as it is, and only its subjects are checked
// to cover need.
func (c *Consumer) ensureStream(ctx context.Context, what string, want jetstream.StreamConfig, need []string) error {
	for range 2 {
		st, err := c.js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = c.js.CreateStream(ctx, want)
			switch {
			case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
				continue // another replica created it: use theirs
			case err != nil:
				return fmt.Errorf("%s %s: creating it with %d replicas: %w", what, want.Name, want.Replicas, err)
			}
			c.cfg.log.LogAttrs(ctx, slog.LevelInfo, what+" created", slog.String("stream", want.Name), slog.Int("replicas", want.Replicas),
				slog.Int64("max_bytes", want.MaxBytes), slog.Duration("max_age", want.MaxAge))
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", what, want.Name, err)
		}
		have := st.CachedInfo().Config
		var missing []string
		for _, subj := range need {
			if !slices.ContainsFunc(have.Subjects, func(p string) bool { return subjectMatches(p, subj) }) {
				missing = append(missing, subj)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s %s: %w: its subjects %q do not hold %q (add %s to them, or name another stream)",
				what, want.Name, ErrSubjectsNotCovered, have.Subjects, missing, want.Subjects[0])
		}
		if c.cfg.settingsGiven && (have.Replicas != want.Replicas || (want.Name == c.cfg.stream && (have.MaxBytes != want.MaxBytes || have.MaxAge != want.MaxAge))) {
			c.cfg.log.LogAttrs(ctx, slog.LevelWarn, what+" exists with other settings than those given: not changed", slog.String("stream", want.Name),
				slog.Int("given_replicas", want.Replicas), slog.Int64("given_max_bytes", want.MaxBytes), slog.Duration("given_max_age", want.MaxAge))
		}
		c.cfg.log.LogAttrs(ctx, slog.LevelInfo, what+" exists: used as it is", slog.String("stream", want.Name), slog.Int("replicas", have.Replicas),
			slog.Int64("max_bytes", have.MaxBytes), slog.Duration("max_age", have.MaxAge), slog.String("retention", have.Retention.String()))
		return nil
	}
	return fmt.Errorf("%s %s: created and removed concurrently; start again", what, want.Name)
}

// subjectMatches reports whether the literal subject subj matches the
// stream subject pattern p ('*' one token, '>' one or more at the end).
func subjectMatches(p, subj string) bool {
	pt, st := strings.Split(p, "."), strings.Split(subj, ".")
	for i, t := range pt {
		if t == ">" {
			return i == len(pt)-1 && len(st) > i
		}
		if i >= len(st) || (t != "*" && t != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

// Stats returns the counters.
func (c *Consumer) Stats() Stats {
	return Stats{Batches: c.batches.Load(), Duplicates: c.duplicates.Load(), Events: c.events.Load(), Dead: c.dead.Load(), Retried: c.retried.Load()}
}

// Info is the durable consumer's state on the server (pending and
// unacknowledged messages).
func (c *Consumer) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	return c.cons.Info(ctx)
}

// Run consumes until ctx is done (then it returns nil, after finishing the
// message in hand) or the connection fails. Messages are handled one at a
// time, each in its own store transaction.
func (c *Consumer) Run(ctx context.Context) error {
	it, err := c.cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return fmt.Errorf("telemetry consumer: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("telemetry consumer: %w", err)
		case err != nil:
			return fmt.Errorf("telemetry consumer: %w", err)
		}
		// The message in hand is finished even when ctx ends now.
		if !c.handle(context.WithoutCancel(ctx), m) {
			return errCrashed
		}
	}
}

// errCrashed ends Run when the test hook beforeAck simulates a crash.
var errCrashed = errors.New("telemetry consumer: stopped before the acknowledgement")

// handle ingests one message and settles it: ack, dead letter, or nak.
// It returns false only when the test hook beforeAck stops the consumer.
func (c *Consumer) handle(ctx context.Context, m jetstream.Msg) bool {
	md, err := m.Metadata()
	if err != nil {
		c.cfg.log.LogAttrs(ctx, slog.LevelError, "telemetry message without metadata", slog.String("subject", m.Subject()), slog.Any("err", err))
		_ = m.Term()
		return true
	}
	seq := md.Sequence.Stream
	format, ok := formatOf(m.Subject())
	body := m.Data()
	switch {
	case !ok:
		c.deadLetter(ctx, m, seq, ReasonWrongSubject, fmt.Sprintf("subject %q names no telemetry format: want %s<format>, format one of %s", m.Subject(), SubjectPrefix, egress.FormatNames()))
		return true
	case len(body) > c.cfg.maxBytes:
		c.deadLetter(ctx, m, seq, ReasonTooLarge, fmt.Sprintf("message of %d bytes over the limit of %d", len(body), c.cfg.maxBytes))
		return true
	case len(body) == 0:
		c.deadLetter(ctx, m, seq, ReasonNoEvents, "empty message")
		return true
	}
	sum := sha256.Sum256(body)
	src := egress.Source{Name: "nats/" + m.Subject() + "/" + strconv.FormatUint(seq, 10), Digest: "sha256:" + hex.EncodeToString(sum[:])}
	res, err := c.ingest(ctx, src, bytes.NewReader(body), format)
	switch {
	case errors.Is(err, egress.ErrUnknownFormat):
		c.deadLetter(ctx, m, seq, ReasonUnknownFormat, err.Error())
		return true
	case errors.Is(err, egress.ErrInputTooLarge):
		c.deadLetter(ctx, m, seq, ReasonTooLarge, err.Error())
		return true
	case errors.Is(err, egress.ErrNoEvents):
		// Nothing was recorded: the same body may come again, parsed as
		// another format or once the inventory lists its devices.
		detail := fmt.Sprintf("no connection event in %d lines read as %s (%d malformed, %d skipped)",
			res.Stats.Lines, res.Stats.Format, res.Stats.Malformed, res.Stats.Skipped)
		if res.Stats.Events > 0 {
			detail = fmt.Sprintf("none of the %d events is from a device in the fleet inventory", res.Unresolved)
		}
		c.deadLetter(ctx, m, seq, ReasonNoEvents, detail)
		return true
	case err != nil:
		c.retry(ctx, m, md, src, err)
		return true
	}
	if res.Added {
		c.batches.Add(1)
		c.events.Add(uint64(res.Stored))
	} else {
		c.duplicates.Add(1)
	}
	if c.beforeAck != nil && !c.beforeAck(m) {
		return false
	}
	// DoubleAck waits for the server: a lost acknowledgement is a
	// redelivery, which the digest makes harmless.
	if err := m.DoubleAck(ctx); err != nil {
		c.cfg.log.LogAttrs(ctx, slog.LevelWarn, "telemetry acknowledgement lost; the message will be redelivered and recognised", slog.String("source", src.Name), slog.Any("err", err))
	}
	return true
}

// retry negatively acknowledges m with a delay that doubles per delivery.
func (c *Consumer) retry(ctx context.Context, m jetstream.Msg, md *jetstream.MsgMetadata, src egress.Source, cause error) {
	c.retried.Add(1)
	d := c.cfg.retry
	for i := uint64(1); i < md.NumDelivered && d < MaxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, MaxRetryDelay)
	c.cfg.log.LogAttrs(ctx, slog.LevelWarn, "telemetry not stored; retrying", slog.String("source", src.Name), slog.Uint64("delivery", md.NumDelivered),
		slog.Duration("delay", d), slog.Any("err", cause))
	if err := m.NakWithDelay(d); err != nil {
		c.cfg.log.LogAttrs(ctx, slog.LevelWarn, "telemetry nak lost; the server redelivers after the ack wait", slog.String("source", src.Name), slog.Any("err", err))
	}
}

// deadLetter copies m to DeadLetterPrefix+reason with the reason headers,
// then terminates it. If the copy cannot be published, m is retried
// instead: a message is never dropped without its dead letter.
func (c *Consumer) deadLetter(ctx context.Context, m jetstream.Msg, seq uint64, reason, detail string) {
	dl := nats.NewMsg(DeadLetterPrefix + reason)
	dl.Data = m.Data()
	dl.Header.Set(ReasonHeader, reason)
	dl.Header.Set(DetailHeader, detail)
	dl.Header.Set(SubjectHeader, m.Subject())
	dl.Header.Set(SequenceHeader, strconv.FormatUint(seq, 10))
	// The message ID makes a second copy (a crash between publish and
	// terminate) a duplicate the server drops.
	if _, err := c.js.PublishMsg(ctx, dl, jetstream.WithMsgID(c.cfg.stream+"/"+strconv.FormatUint(seq, 10))); err != nil {
		c.cfg.log.LogAttrs(ctx, slog.LevelWarn, "dead letter not published; retrying the message", slog.Uint64("seq", seq), slog.String("reason", reason), slog.Any("err", err))
		c.retried.Add(1)
		_ = m.NakWithDelay(c.cfg.retry)
		return
	}
	c.dead.Add(1)
	c.cfg.log.LogAttrs(ctx, slog.LevelWarn, "telemetry message dead-lettered", slog.String("subject", m.Subject()), slog.Uint64("seq", seq),
		slog.String("reason", reason), slog.String("detail", detail))
	if err := m.TermWithReason(reason); err != nil {
		c.cfg.log.LogAttrs(ctx, slog.LevelWarn, "telemetry terminate lost; the redelivery is dead-lettered again (once: same message ID)", slog.Uint64("seq", seq), slog.Any("err", err))
	}
}

// Dial connects to a NATS server at url (nats://HOST:PORT, or tls://),
// reconnecting for ever; name is the connection's name in the server's
// monitoring.
func Dial(url, name string) (*nats.Conn, error) {
	if !strings.HasPrefix(url, "nats://") && !strings.HasPrefix(url, "tls://") {
		return nil, fmt.Errorf("telemetry bus %q: want nats://HOST:PORT or tls://HOST:PORT", url)
	}
	nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false))
	if err != nil {
		return nil, fmt.Errorf("telemetry bus %s: %w", url, err)
	}
	return nc, nil
}
