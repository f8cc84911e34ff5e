package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/retry"
)

// The dashboard only reads streams, with ordered (ephemeral, unacknowledged)
// consumers: it creates nothing that outlives it, and a stream that does not
// exist yet (the notifier creates ALERTS) is waited for.

// tailStart is where a tail of the last n messages begins.
func tailStart(info *jetstream.StreamInfo, n int) jetstream.OrderedConsumerConfig {
	first := uint64(1)
	if last := info.State.LastSeq; last >= uint64(n) {
		first = last - uint64(n) + 1
	}
	first = max(first, info.State.FirstSeq)
	return jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: first}
}

// follow calls fn for every message of stream from where start says, live,
// until ctx ends. It waits for the stream to exist, and when the consumer
// fails it starts again after the last sequence it saw (or from start if
// the stream was recreated).
func follow(ctx context.Context, log *slog.Logger, js jetstream.JetStream, stream string,
	start func(*jetstream.StreamInfo) jetstream.OrderedConsumerConfig, fn func(jetstream.Msg)) {
	var lastSeq uint64
	b := retry.Backoff{Max: 5 * time.Second}
	_ = retry.Do(ctx, b, func(ctx context.Context) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("stream %s: %w", stream, err)
		}
		info := s.CachedInfo()
		var cfg jetstream.OrderedConsumerConfig
		if lastSeq == 0 || info.State.LastSeq < lastSeq {
			cfg = start(info)
		} else {
			cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: lastSeq + 1}
		}
		cons, err := s.OrderedConsumer(ctx, cfg)
		if err != nil {
			return fmt.Errorf("consumer on %s: %w", stream, err)
		}
		it, err := cons.Messages()
		if err != nil {
			return fmt.Errorf("consume %s: %w", stream, err)
		}
		defer it.Stop()
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("read %s: %w", stream, err)
			}
			if md, err := msg.Metadata(); err == nil {
				lastSeq = md.Sequence.Stream
			}
			fn(msg)
		}
	}, func(err error, wait time.Duration) {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			log.Debug("waiting for stream", "stream", stream)
			return
		}
		log.Warn("following stream", "stream", stream, "err", err, "retry_in", wait)
	})
}

// readOnce calls fn for the messages that cfg selects from stream as it is
// now, then returns: a one-shot read such as the last message per subject.
func readOnce(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig, fn func(jetstream.Msg)) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	if s.CachedInfo().State.Msgs == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", stream, err)
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			fn(msg)
			// Stop at the end of what is there now; the rest of the fetch
			// (waiting for new messages) is abandoned with the consumer.
			if md, err := msg.Metadata(); err == nil && md.NumPending == 0 {
				return nil
			}
		}
		if n == 0 {
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
				return fmt.Errorf("read %s: %w", stream, err)
			}
			return nil
		}
	}
}
