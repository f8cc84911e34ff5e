package main

import (
	"fmt"
	"io"
	"time"

	"github.com/edgeflow/edgeflow/scripts/internal/progress"
)

// stepTick is how often a line says where the running step is: a step lasts a minute
// or more, and the drain and window counts after it up to Settle.
const stepTick = 15 * time.Second

// stepsLeft estimates how long the steps from done on still take, current of step done
// having passed: the configured durations, at the pace of the steps done (took for
// their configured durations; each also waits for a fresh window, the drain and the
// window counts), or as configured before any is done. The running step's share is its
// paced duration less current, so the estimate keeps falling while it drains.
func stepsLeft(durations []time.Duration, done int, took, current time.Duration) time.Duration {
	var plannedDone, plannedAfter time.Duration
	for i, d := range durations {
		switch {
		case i < done:
			plannedDone += d
		case i > done:
			plannedAfter += d
		}
	}
	pace := 1.0
	if plannedDone > 0 && took > 0 {
		pace = took.Seconds() / plannedDone.Seconds()
	}
	left := time.Duration(float64(plannedAfter) * pace)
	if done < len(durations) {
		left += max(time.Duration(float64(durations[done])*pace)-current, 0)
	}
	return left
}

// stepLine is where step i (from 0) of the plan is, current after it started:
//
//	step 2/6: 10000 msgs/s, publishing 45s of 1m0s, about 5m10s left
func stepLine(rates []float64, durations []time.Duration, i int, took, current time.Duration) string {
	phase := "for " + progress.Duration(durations[i])
	switch {
	case current >= durations[i]:
		phase = "draining and counting windows"
	case current > 0:
		phase = fmt.Sprintf("publishing %s of %s", progress.Duration(current), progress.Duration(durations[i]))
	}
	return fmt.Sprintf("step %s: %.0f msgs/s, %s, %s", progress.Step(i+1, len(rates)), rates[i], phase,
		progress.About(stepsLeft(durations, i, took, current)))
}

// stampWriter starts every line written to it with the time of day, as logf does.
type stampWriter struct {
	w   io.Writer
	now func() time.Time
}

func (s stampWriter) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(s.w, "%s %s", s.now().Format("15:04:05"), p); err != nil {
		return 0, err
	}
	return len(p), nil
}
