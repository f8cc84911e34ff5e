// Package retry is the project's one retry loop: exponential backoff with
// jitter, bounded by a context. A dependency that is down (NATS, InfluxDB) is
// waited for, never given up on while the service runs: giving up would mean
// dropping data that was accepted.
package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Defaults suit a dependency restarting on the same machine: the first retry
// is quick, and a long outage costs a request every 5 s at most.
const (
	DefaultInitial = 100 * time.Millisecond
	DefaultMax     = 5 * time.Second
)

// Backoff yields growing waits: Initial, doubled each time up to Max, each
// with ±20% jitter so replicas do not retry in lockstep.
type Backoff struct {
	Initial, Max time.Duration
	next         time.Duration
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	if b.Initial <= 0 {
		b.Initial = DefaultInitial
	}
	if b.Max <= 0 {
		b.Max = DefaultMax
	}
	if b.next == 0 {
		b.next = b.Initial
	}
	d := b.next
	b.next = min(b.next*2, b.Max)
	jitter := time.Duration(rand.Int64N(int64(d)/5 + 1))
	if rand.IntN(2) == 0 {
		return d - jitter
	}
	return d + jitter
}

// Reset starts the sequence again after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Do calls op until it returns nil or ctx ends, waiting with Backoff between
// attempts; onRetry (may be nil) sees each failure before the wait. It
// returns ctx's error if ctx ended first.
func Do(ctx context.Context, b Backoff, op func(context.Context) error, onRetry func(err error, wait time.Duration)) error {
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		var p *permanentError
		if errors.As(err, &p) {
			return p.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := b.Next()
		if onRetry != nil {
			onRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Permanent wraps an error that retrying cannot fix: Do returns err at once.
func Permanent(err error) error { return &permanentError{err} }

type permanentError struct{ err error }

func (p *permanentError) Error() string { return p.err.Error() }
func (p *permanentError) Unwrap() error { return p.err }
