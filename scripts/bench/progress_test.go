package main

import (
	"bytes"
	"testing"
	"time"
)

// The estimate starts from the configured step durations and, once steps are done,
// goes at their pace (which includes what a step waits for after publishing), the
// running step's time counted off its share.
func TestStepsLeft(t *testing.T) {
	m := time.Minute
	four := []time.Duration{m, m, m, m}
	for _, tc := range []struct {
		name          string
		durations     []time.Duration
		done          int
		took, current time.Duration
		want          time.Duration
	}{
		{"before the first step: the durations", four, 0, 0, 0, 4 * m},
		{"into the first step: what it has not run yet", four, 0, 0, 20 * time.Second, 3*m + 40*time.Second},
		{"first step past its duration: the others", four, 0, 0, 90 * time.Second, 3 * m},
		{"one done in 1m30s: the pace of it", four, 1, 90 * time.Second, 0, 3 * 90 * time.Second},
		{"two done in 3m, 30s of the third run", four, 2, 3 * m, 30 * time.Second, 150 * time.Second},
		{"all done", four, 4, 6 * m, 0, 0},
		{"draining past the step's paced duration", four, 3, 6 * m, 2 * m, 0},
		{"uneven durations", []time.Duration{10 * time.Second, 50 * time.Second}, 1, 20 * time.Second, 0, 100 * time.Second},
	} {
		if got := stepsLeft(tc.durations, tc.done, tc.took, tc.current); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStepLine(t *testing.T) {
	rates := []float64{5000, 10000, 15000}
	durations := []time.Duration{time.Minute, time.Minute, time.Minute}
	for _, tc := range []struct {
		i             int
		took, current time.Duration
		want          string
	}{
		{0, 0, 0, "step 1/3: 5000 msgs/s, for 1m00s, about 3m00s left"},
		{1, 80 * time.Second, 45 * time.Second, "step 2/3: 10000 msgs/s, publishing 45s of 1m00s, about 1m55s left"},
		{2, 160 * time.Second, 70 * time.Second, "step 3/3: 15000 msgs/s, draining and counting windows, about 10s left"},
	} {
		if got := stepLine(rates, durations, tc.i, tc.took, tc.current); got != tc.want {
			t.Errorf("step %d:\n got %q\nwant %q", tc.i, got, tc.want)
		}
	}
}

// Progress lines start with the time of day, as the bench's other lines do.
func TestStampWriter(t *testing.T) {
	var b bytes.Buffer
	w := stampWriter{&b, func() time.Time { return time.Date(2026, 12, 3, 6, 7, 8, 0, time.UTC) }}
	if n, err := w.Write([]byte("bench: step 1/3\n")); err != nil || n != 16 {
		t.Fatalf("wrote %d, %v", n, err)
	}
	if got := b.String(); got != "06:07:08 bench: step 1/3\n" {
		t.Fatalf("got %q", got)
	}
}
