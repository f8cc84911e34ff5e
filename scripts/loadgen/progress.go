package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgeflow/edgeflow/scripts/internal/progress"
)

// DefaultProgress is the interval of the rate line: often enough to watch a run, rare
// enough that a 10-minute run writes a screenful.
const DefaultProgress = 5 * time.Second

// Counts are the publishes of a run so far, duplicates included except in Attempted.
type Counts struct {
	Sent      int64 // PUBLISH packets handed to the MQTT client, duplicates included
	Attempted int64 // distinct messages handed to the client (what -count counts)
	Acked     int64
	Failed    int64
}

// Progress says where and how often Run writes its rate line. The zero value writes
// none.
type Progress struct {
	W     io.Writer
	Every time.Duration
	// Ticks and Now replace the ticker and the clock in tests.
	Ticks <-chan time.Time
	Now   func() time.Time
}

// SetProgress makes Run write a rate line to p.W every p.Every while it publishes and
// drains (main writes it to stderr; the summary on stdout is unchanged).
func (g *Generator) SetProgress(p Progress) { g.progress = p }

func (g *Generator) counts(pubs []*publisher) Counts {
	var c Counts
	for _, p := range pubs {
		p.mu.Lock()
		c.Sent += p.counts.Sent
		c.Attempted += p.counts.Attempted
		c.Acked += p.counts.Acked
		c.Failed += p.counts.Failed
		p.mu.Unlock()
	}
	return c
}

// startProgress starts the rate line of a run that starts publishing now; draining
// is set once the publishers are done. The returned stop ends it.
func (g *Generator) startProgress(ctx context.Context, pubs []*publisher, draining *atomic.Bool) (stop func()) {
	pr := g.progress
	if pr.W == nil || (pr.Every <= 0 && pr.Ticks == nil) {
		return func() {}
	}
	rep := progress.New(pr.W, "loadgen: ", pr.Now)
	var prev Counts
	var prevAt time.Duration
	return rep.Every(ctx, pr.Every, pr.Ticks, func(elapsed time.Duration) string {
		c := g.counts(pubs)
		line := rateLine(g.cfg, c, prev, elapsed-prevAt, elapsed, draining.Load())
		prev, prevAt = c, elapsed
		return line
	})
}

// rateLine is one progress line of a run: the counts, the send rate since the
// previous line (prev, dt ago) and, while publishing, an estimate of the time left from
// -count and -duration, whichever ends the run first. The reporter appends the elapsed
// time.
//
//	sent 12000, acked 11950, failed 0, 2000 msgs/s, 12000/24000 messages, about 6s left
func rateLine(cfg Config, c, prev Counts, dt, elapsed time.Duration, draining bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent %d, acked %d, failed %d, %.0f msgs/s", c.Sent, c.Acked, c.Failed, progress.Rate(c.Sent-prev.Sent, dt))
	if draining {
		fmt.Fprintf(&b, ", draining %d unacknowledged", c.Sent-c.Acked-c.Failed)
		return b.String()
	}
	left, known := time.Duration(0), false
	if cfg.Count > 0 {
		fmt.Fprintf(&b, ", %d/%d messages", c.Attempted, cfg.Count)
		left, known = progress.Left(elapsed, float64(c.Attempted), float64(cfg.Count))
	}
	if cfg.Duration > 0 {
		if byTime := max(cfg.Duration-elapsed, 0); !known || byTime < left {
			left, known = byTime, true
		}
	}
	if known {
		b.WriteString(", " + progress.About(left))
	}
	return b.String()
}
