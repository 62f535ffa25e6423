package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardgate/wardgate/egress/bus"
	"github.com/wardgate/wardgate/server"
)

// TelemetryEnv is --telemetry (docs/serve.md, "Telemetry bus").
const TelemetryEnv = "WARDGATE_TELEMETRY"

// telemetryBus is a running bus consumer.
type telemetryBus struct {
	stop func() error
}

// startTelemetryBus connects to the NATS server of cfg.Telemetry, creates
// the streams and the durable consumer, and consumes into srv (the path
// POST /v1/telemetry takes) until Close. A consumer that fails sends its
// error to errc. Without cfg.Telemetry nothing connects anywhere.
func startTelemetryBus(ctx context.Context, cfg ServeConfig, srv *server.Server, logger *slog.Logger, errc chan<- error) (*telemetryBus, error) {
	if cfg.Telemetry == "" {
		return &telemetryBus{stop: func() error { return nil }}, nil
	}
	nc, err := bus.Dial(cfg.Telemetry, "wardgate serve")
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("telemetry bus %s: %w", cfg.Telemetry, err)
	}
	opts := []bus.Option{bus.WithLogger(logger.WithGroup("bus"))}
	if cfg.TelemetryMaxBytes > 0 {
		opts = append(opts, bus.WithMaxBytes(cfg.TelemetryMaxBytes))
	}
	if cfg.TelemetryStream != nil {
		opts = append(opts, bus.WithStreamSettings(*cfg.TelemetryStream))
	}
	c, err := bus.New(ctx, js, srv.IngestTelemetry, opts...)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("telemetry bus %s: %w", cfg.Telemetry, err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() {
		err := c.Run(rctx)
		if err != nil {
			errc <- fmt.Errorf("telemetry bus %s: %w", cfg.Telemetry, err)
		}
		done <- err
	}()
	logger.Info("consuming telemetry", "nats", cfg.Telemetry, "stream", bus.DefaultStream, "durable", bus.DefaultDurable,
		"subjects", bus.SubjectPrefix+">", "dead_letters", bus.DeadLetterPrefix+">")
	return &telemetryBus{stop: func() error {
		cancel()
		err := <-done
		nc.Close()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}}, nil
}

// Close stops consuming (the message in hand is finished) and closes the
// connection.
func (b *telemetryBus) Close() error { return b.stop() }

// validateTelemetry checks --telemetry and telemetry.max_message_bytes.
func (c *ServeConfig) validateTelemetry() error {
	var errs []error
	if c.Telemetry != "" && !strings.HasPrefix(c.Telemetry, "nats://") && !strings.HasPrefix(c.Telemetry, "tls://") {
		errs = append(errs, fmt.Errorf("--telemetry %q: want nats://HOST:PORT or tls://HOST:PORT", c.Telemetry))
	}
	if c.TelemetryMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("telemetry.max_message_bytes %d: must be positive", c.TelemetryMaxBytes))
	}
	if c.TelemetryMaxBytes > 0 && c.Telemetry == "" {
		errs = append(errs, errors.New("telemetry.max_message_bytes needs a NATS server (--telemetry or telemetry.nats)"))
	}
	if s := c.TelemetryStream; s != nil {
		if c.Telemetry == "" {
			errs = append(errs, errors.New("--telemetry-replicas, --telemetry-max-bytes and --telemetry-max-age (telemetry.replicas, max_bytes, max_age) need a NATS server (--telemetry or telemetry.nats)"))
		}
		if s.Replicas < 1 || s.Replicas > bus.MaxReplicas {
			errs = append(errs, fmt.Errorf("--telemetry-replicas %d (telemetry.replicas): want 1 to %d", s.Replicas, bus.MaxReplicas))
		}
		if s.MaxBytes < 0 {
			errs = append(errs, fmt.Errorf("--telemetry-max-bytes %d (telemetry.max_bytes): want 0 (no limit) or more", s.MaxBytes))
		}
		if s.MaxAge < 0 {
			errs = append(errs, fmt.Errorf("--telemetry-max-age %s (telemetry.max_age): want 0 (no limit) or more", s.MaxAge))
		}
	}
	return errors.Join(errs...)
}

// Flags of the telemetry stream's settings at creation.
const (
	telemetryReplicasFlag = "telemetry-replicas"
	telemetryMaxBytesFlag = "telemetry-max-bytes"
	telemetryMaxAgeFlag   = "telemetry-max-age"
)

func registerTelemetryStreamFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Int(telemetryReplicasFlag, bus.DefaultReplicas, "replicas of the telemetry streams when serve creates them (1 to 5; more than 1 needs a JetStream cluster); an existing stream is used as it is")
	f.String(telemetryMaxBytesFlag, "0", "size limit of the telemetry stream when serve creates it: bytes, or a number with KiB, MiB, GiB or TiB; 0 for none; a full stream refuses new messages")
	f.Duration(telemetryMaxAgeFlag, 0, "age limit of unconsumed telemetry in the stream when serve creates it (such as 72h); 0 for none")
}

// resolveTelemetryStream sets c.TelemetryStream from the flags and the
// file (flags win) when any of them is given.
func (c *ServeConfig) resolveTelemetryStream(cmd *cobra.Command, sf ServeFile) error {
	f := cmd.Flags()
	ft := sf.Telemetry
	if !f.Changed(telemetryReplicasFlag) && !f.Changed(telemetryMaxBytesFlag) && !f.Changed(telemetryMaxAgeFlag) &&
		ft.Replicas == nil && ft.MaxBytes == "" && ft.MaxAge == "" {
		return nil
	}
	s := bus.StreamSettings{Replicas: bus.DefaultReplicas}
	var errs []error
	if f.Changed(telemetryReplicasFlag) {
		s.Replicas, _ = f.GetInt(telemetryReplicasFlag)
	} else if ft.Replicas != nil {
		s.Replicas = *ft.Replicas
	}
	size, name := ft.MaxBytes, "telemetry.max_bytes"
	if f.Changed(telemetryMaxBytesFlag) {
		size, _ = f.GetString(telemetryMaxBytesFlag)
		name = "--" + telemetryMaxBytesFlag
	}
	if size != "" {
		n, err := parseSize(size)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, size, err))
		}
		s.MaxBytes = n
	}
	if f.Changed(telemetryMaxAgeFlag) {
		s.MaxAge, _ = f.GetDuration(telemetryMaxAgeFlag)
	} else if ft.MaxAge != "" {
		d, err := time.ParseDuration(ft.MaxAge)
		if err != nil {
			errs = append(errs, fmt.Errorf("telemetry.max_age %q: want a duration such as 72h, or 0 for no limit", ft.MaxAge))
		}
		s.MaxAge = d
	}
	c.TelemetryStream = &s
	return errors.Join(errs...)
}

// parseSize reads a byte count: digits, optionally followed by KiB, MiB,
// GiB or TiB.
func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}}
	num, shift := strings.TrimSpace(v), uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(n), u.shift
			break
		}
	}
	bad := errors.New("want a number of bytes, or a number with KiB, MiB, GiB or TiB (such as 10GiB); 0 for no limit")
	if num == "" || strings.Trim(num, "0123456789") != "" || len(num) > 19 {
		return 0, bad
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64>>shift {
		return 0, bad
	}
	return n << shift, nil
}
