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
// having passed: the configured durations not run yet, at the pace of the steps done
// (took for their configured durations; each also waits for a fresh window, the drain
// and the window counts), or the configured durations alone before any is done.
func stepsLeft(durations []time.Duration, done int, took, current time.Duration) time.Duration {
	var plannedDone, plannedLeft time.Duration
	for i, d := range durations {
		if i < done {
			plannedDone += d
		} else {
			plannedLeft += d
		}
	}
	if done < len(durations) {
		plannedLeft -= min(current, durations[done])
	}
	plannedLeft = max(plannedLeft, 0)
	if left, ok := progress.Left(took, plannedDone.Seconds(), (plannedDone + plannedLeft).Seconds()); ok {
		return left
	}
	return plannedLeft
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
