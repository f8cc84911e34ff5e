package main

import (
	"context"
	"time"
)

// pacerBurst is how far behind schedule a pacer may fall and still catch up
// at full speed: after a longer stall (broker restart, GC pause) the missed
// tokens are dropped, so the offered rate never spikes above one burst.
const pacerBurst = 50 * time.Millisecond

// pacer is a token bucket driven by the clock rather than by a ticker: token
// k (0-based) becomes available at start + k/rate, and take hands out every
// token that is due in one batch. It sleeps only when no token is due, so the
// rate stays accurate at 100k/s where a timer per message would not, and the
// average over a run is exact because lateness is caught up (within
// pacerBurst). Not safe for concurrent use: each publisher owns one.
type pacer struct {
	rate   float64 // tokens per second; <= 0 is unlimited
	start  time.Time
	issued int64 // tokens handed out so far (including dropped ones)
	burst  int64
}

func newPacer(rate float64, start time.Time) *pacer {
	burst := int64(rate * pacerBurst.Seconds())
	if burst < 1 {
		burst = 1
	}
	return &pacer{rate: rate, start: start, burst: burst}
}

// take blocks until at least one token is due and returns how many, at most
// max. It returns ctx's error when ctx ends first.
func (p *pacer) take(ctx context.Context, max int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if p.rate <= 0 {
		return max, nil
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		elapsed := time.Since(p.start)
		due := int64(elapsed.Seconds()*p.rate) + 1 // token 0 is due at start
		if due-p.issued > p.burst {
			p.issued = due - p.burst
		}
		if n := due - p.issued; n > 0 {
			if n > int64(max) {
				n = int64(max)
			}
			p.issued += int64(n)
			return int(n), nil
		}
		next := time.Duration(float64(p.issued) / p.rate * float64(time.Second))
		wait := next - elapsed + time.Microsecond // just past the rounding of due
		if wait < 0 {
			wait = 0
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-timer.C:
		}
	}
}
