package progress

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for the tests: no assertion waits for real time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                       "0s",
		-3 * time.Second:                        "0s",
		400 * time.Millisecond:                  "0s",
		1500 * time.Millisecond:                 "2s",
		42 * time.Second:                        "42s",
		3*time.Minute + 7*time.Second:           "3m07s",
		time.Hour + 2*time.Minute + 3e9:         "1h02m03s",
		26*time.Hour + 59*time.Second:           "26h00m59s",
		59*time.Minute + 59500*time.Millisecond: "1h00m00s",
	} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLeft(t *testing.T) {
	for _, tc := range []struct {
		elapsed     time.Duration
		done, total float64
		want        time.Duration
		ok          bool
	}{
		{time.Minute, 1, 4, 3 * time.Minute, true},
		{30 * time.Second, 250, 1000, 90 * time.Second, true},
		{time.Minute, 4, 4, 0, true},
		{time.Minute, 5, 4, 0, true},
		{time.Minute, 0, 4, 0, false}, // no pace yet
		{time.Minute, 1, 0, 0, false}, // no total
	} {
		got, ok := Left(tc.elapsed, tc.done, tc.total)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Left(%v, %v, %v) = %v, %v; want %v, %v", tc.elapsed, tc.done, tc.total, got, ok, tc.want, tc.ok)
		}
	}
	if Step(3, 7) != "3/7" || About(95*time.Second) != "about 1m35s left" {
		t.Errorf("Step %q, About %q", Step(3, 7), About(95*time.Second))
	}
	if Rate(500, 2*time.Second) != 250 || Rate(5, 0) != 0 {
		t.Errorf("Rate: %v %v", Rate(500, 2*time.Second), Rate(5, 0))
	}
}

// Every line is the prefix, the text and the time elapsed on the reporter's clock.
func TestPrintf(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	r := New(&out, "[deploy] ", c.Now)
	c.Advance(65 * time.Second)
	r.Printf("rollouts %s ready", Step(2, 7))
	if got, want := out.String(), "[deploy] rollouts 2/7 ready, elapsed 1m05s\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Every writes one line per tick with the elapsed time of that tick, skips empty
// lines, and writes nothing after stop.
func TestEvery(t *testing.T) {
	c := newClock()
	var out bytes.Buffer // written by the reporter only, read after it stopped
	r := New(&out, "loadgen: ", c.Now)
	ticks := make(chan time.Time)
	n := 0
	stop := r.Every(context.Background(), 0, ticks, func(elapsed time.Duration) string {
		n++
		if n == 2 {
			return ""
		}
		return "sent " + Duration(elapsed)
	})
	for range 3 {
		c.Advance(5 * time.Second)
		// Each tick carries its time: the reporter's goroutine reads no clock.
		ticks <- c.Now()
	}
	stop()
	want := "loadgen: sent 5s, elapsed 5s\nloadgen: sent 15s, elapsed 15s\n"
	if got := out.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	select {
	case ticks <- c.Now():
		t.Fatal("a tick was taken after stop")
	default:
	}
}

// The reporter stops with its context as well.
func TestEveryStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer // written by the reporter only, read after it stopped
	stop := New(&out, "", nil).Every(ctx, 0, make(chan time.Time), func(time.Duration) string { return "x" })
	cancel()
	stop() // returns: the goroutine ended
	if out.String() != "" {
		t.Fatalf("wrote %q without a tick", out.String())
	}
	// No ticks and no interval: nothing to run.
	New(&out, "", nil).Every(context.Background(), 0, nil, func(time.Duration) string { return "x" })()
}
