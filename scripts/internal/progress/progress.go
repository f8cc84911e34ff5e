// Package progress writes the progress lines of the tooling's long work (task deploy,
// task bench, the load generator): i/N, the time elapsed and an estimate of the time
// left, one plain line at a time.
//
// Lines are never redrawn with a carriage return: the output is read in terminals, CI
// logs and files alike, and a plain line greps the same in each. Every line ends with
// "elapsed <duration>" so a reader can tell how long the work has been going.
package progress

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// Reporter writes the progress lines of one piece of work to w, each starting with
// prefix and ending with the time elapsed since New. Its methods may be called from
// several goroutines; each line is written with one Write.
type Reporter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	now    func() time.Time
	start  time.Time
}

// New starts the clock of a piece of work. now is the clock (nil: time.Now); tests
// pass their own so no assertion depends on real time passing.
func New(w io.Writer, prefix string, now func() time.Time) *Reporter {
	if now == nil {
		now = time.Now
	}
	return &Reporter{w: w, prefix: prefix, now: now, start: now()}
}

// Elapsed is the time since New.
func (r *Reporter) Elapsed() time.Duration { return r.now().Sub(r.start) }

// Printf writes one line: the prefix, the text, and ", elapsed <duration>".
func (r *Reporter) Printf(format string, args ...any) {
	r.write(fmt.Sprintf(format, args...), r.Elapsed())
}

func (r *Reporter) write(text string, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = io.WriteString(r.w, r.prefix+text+", elapsed "+Duration(elapsed)+"\n")
}

// Every writes line(elapsed) as a Printf line at each tick taken until ctx ends or
// the returned stop is called; stop returns once the line of a tick already taken is
// written, so nothing is written after it. The elapsed time of a line is the tick's
// time less the start (a time.Ticker sends the time of the tick), so a test's ticks
// carry their own time and need no clock shared with the reporter's goroutine. An empty line is skipped. The ticks come from ticks (tests send
// their own), or from a time.Ticker of interval when ticks is nil; an interval <= 0
// with nil ticks writes nothing.
func (r *Reporter) Every(ctx context.Context, interval time.Duration, ticks <-chan time.Time, line func(elapsed time.Duration) string) (stop func()) {
	stopTicker := func() {}
	if ticks == nil {
		if interval <= 0 {
			return func() {}
		}
		t := time.NewTicker(interval)
		ticks, stopTicker = t.C, t.Stop
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case t := <-ticks:
				elapsed := t.Sub(r.start)
				if s := line(elapsed); s != "" {
					r.write(s, elapsed)
				}
			}
		}
	}()
	return func() { cancel(); <-done; stopTicker() }
}

// Duration formats d to the second for a progress line: 42s, 3m07s, 1h02m03s; under
// a second is 0s, a negative d too.
func Duration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	switch h, m := s/3600, s/60%60; {
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s%60)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s%60)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

// Step is "i/n", the way every progress line counts (workloads ready, bench steps).
func Step(i, n int) string { return fmt.Sprintf("%d/%d", i, n) }

// Left estimates the time left of work of which done of total units took elapsed,
// assuming the rest goes at the same pace. It is false when nothing is done yet (no
// pace to go by) or total is not positive.
func Left(elapsed time.Duration, done, total float64) (time.Duration, bool) {
	if done <= 0 || total <= 0 || math.IsNaN(done) || math.IsNaN(total) {
		return 0, false
	}
	if done >= total {
		return 0, true
	}
	return time.Duration(float64(elapsed) * (total - done) / done), true
}

// About is how an estimate reads in a line: "about 3m07s left".
func About(left time.Duration) string { return "about " + Duration(left) + " left" }

// Rate is the per-second rate of n events in d, 0 when d is not positive.
func Rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
