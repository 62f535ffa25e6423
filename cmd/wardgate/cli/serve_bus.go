package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

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
	return errors.Join(errs...)
}
