package main

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Changing EDGEFLOW_PROCESSOR_WINDOWS is a rolling update: a replica with
// 1s and 2s windows stops, one with 1s and 3s windows takes its partition
// over while devices keep sending. The kept 1s windows count every reading
// once, on AGGREGATES and in InfluxDB; the new 3s windows start at a
// boundary after every reading the old replica folded (which may be a
// little before the new one starts), each holding every reading of its
// span; the removed 2s length just ends. (Before, the new replica failed to load the
// checkpoint, window.ErrCheckpointSizes, for ever.)
func TestWindowLengthsChangeOnARunningPartition(t *testing.T) {
	b := newTestBus(t)
	in := startInflux(t)
	stopSending := startSender(t, b)
	before := testWorker(t, b, in.URL, nil)
	time.Sleep(2500 * time.Millisecond) // several windows closed and checkpoints taken
	before.stopped(t)
	switched := time.Now().UnixMilli()
	after := testWorker(t, b, in.URL, nil, func(c *Config) { c.Windows = []time.Duration{time.Second, 3 * time.Second} })
	time.Sleep(7 * time.Second) // two full 3s windows
	n := stopSending()

	deadline := time.Now().Add(60 * time.Second)
	for {
		counts := b.windowCounts(t)
		if counts["1s"] == n {
			break
		}
		if counts["1s"] > n || time.Now().After(deadline) {
			t.Fatalf("1s windows count %d, want %d (late: %v before, %v after the switch)", counts["1s"], n,
				testutil.ToFloat64(before.metrics.Late), testutil.ToFloat64(after.metrics.Late))
		}
		select {
		case <-after.ended:
			t.Fatalf("the new replica stopped: %v", after.err)
		default:
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, w := range []*testRun{before, after} {
		if late := testutil.ToFloat64(w.metrics.Late); late != 0 {
			t.Fatalf("%v readings late", late)
		}
	}
	if got := influxWindowCount(t, in.URL, "1s"); got != n {
		t.Errorf("InfluxDB telemetry_1s counts %d readings, want %d", got, n)
	}

	// The 3s windows of each device, once all closed, count every reading
	// from the first one's start, and each holds every reading of its span
	// (raw points): the first did not start in the middle of the switch.
	var aggs []reading.Aggregate
	for {
		aggs = b.aggregates(t)
		if added3sComplete(t, in.URL, aggs) {
			break
		}
		if time.Now().After(deadline) {
			t.Error("the 3s windows never counted every reading since the first one's start")
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	perDevice := map[string]int{}
	for _, a := range aggs {
		switch a.Window {
		case "2s":
			if a.End > switched {
				t.Errorf("2s window %d–%d of %s after the switch at %d", a.Start, a.End, a.Device, switched)
			}
		case "3s":
			// The old replica folded stream sequences up to before.seq; the
			// sender's value t is a reading's sequence - 1.
			if old := influxQuery(t, in.URL, fmt.Sprintf(`SELECT count(t) FROM telemetry WHERE device = '%s' AND time >= %dms AND time < %dms AND t < %d`,
				a.Device, a.Start, a.End, before.seq)); old > 0 {
				t.Errorf("3s window %d of %s spans %d readings the replica before the switch folded", a.Start, a.Device, old)
			}
			if raw := rawCount(t, in.URL, a.Device, a.Start, a.End); a.Metrics["t"].Count != raw {
				t.Errorf("3s window %d of %s counts %d readings, %d were sent in it", a.Start, a.Device, a.Metrics["t"].Count, raw)
			}
			perDevice[a.Device]++
		}
	}
	if perDevice["a"] < 2 || perDevice["b"] < 2 {
		t.Fatalf("3s windows per device: %v, want at least 2 each", perDevice)
	}
}

// added3sComplete reports whether, for each device, the 3s windows in aggs
// count as many readings as InfluxDB holds from the first one's start on.
func added3sComplete(t *testing.T, influxURL string, aggs []reading.Aggregate) bool {
	t.Helper()
	first, counted := map[string]int64{}, map[string]int64{}
	for _, a := range aggs {
		if a.Window == "3s" {
			if f, ok := first[a.Device]; !ok || a.Start < f {
				first[a.Device] = a.Start
			}
			counted[a.Device] += a.Metrics["t"].Count
		}
	}
	for _, dev := range []string{"a", "b"} {
		f, ok := first[dev]
		if !ok || counted[dev] != rawCount(t, influxURL, dev, f, math.MaxInt64/int64(time.Millisecond)) {
			return false
		}
	}
	return true
}

// rawCount is the raw readings of a device in InfluxDB in [from, to) (Unix ms).
func rawCount(t *testing.T, influxURL, device string, from, to int64) int64 {
	t.Helper()
	return influxQuery(t, influxURL, fmt.Sprintf(`SELECT count(t) FROM telemetry WHERE device = '%s' AND time >= %dms AND time < %dms`,
		device, from, to))
}
