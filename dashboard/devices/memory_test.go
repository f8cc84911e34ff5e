package devices

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// podLimit is the dashboard container's memory limit (manifests/base/dashboard.yaml);
// defaultBudget the default of EDGEFLOW_DASHBOARD_DEVICE_MEMORY_MIB.
const (
	podLimit      = 128 << 20
	defaultBudget = 40 << 20
)

// heapAfterGC is the live heap, measured after two collections.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// fill sends every one of devices its full history: metrics series of
// RingLen points each, one reading a second, heard at now.
func fill(g *Registry, devices, metrics int, now time.Time) {
	names := make([]string, metrics)
	for m := range names {
		names[m] = fmt.Sprintf("metric_%02d", m)
	}
	r := &reading.Reading{Site: "site", Metrics: make(map[string]float64, metrics)}
	for d := range devices {
		r.Device = fmt.Sprintf("device-%05d", d)
		for i := range RingLen {
			r.TS = int64(i) * 1000
			for m, n := range names {
				r.Metrics[n] = float64(i*m) + 0.5
			}
			g.Update(r, now.Add(time.Duration(d)*time.Millisecond))
		}
	}
}

// 10,000 devices (the documented site size) with many metrics each, every
// ring full: the registry's heap stays well inside the pod's limit.
func TestTenThousandDevicesFitThePod(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 10,000 devices")
	}
	for _, metrics := range []int{8, MaxMetrics} {
		t.Run(fmt.Sprintf("%d_metrics", metrics), func(t *testing.T) {
			before := heapAfterGC()
			g := NewRegistry(defaultBudget)
			fill(g, 10_000, metrics, time.UnixMilli(1_000_000))
			heap := heapAfterGC() - before
			t.Logf("10000 devices x %d metrics x %d points: heap %.1f MiB, %d devices kept (the last heard), %d forgotten, %.1f MiB charged",
				metrics, RingLen, float64(heap)/(1<<20), g.Len(), g.Evicted(), float64(g.Bytes())/(1<<20))
			if heap > podLimit/2 {
				t.Fatalf("heap %.1f MiB: over half the pod's %d MiB limit", float64(heap)/(1<<20), podLimit>>20)
			}
			runtime.KeepAlive(g)
		})
	}
}

// A full registry makes room for a new device by forgetting the one heard
// from least recently: new devices are never refused, so devices that sent
// once (or never existed) cannot lock out real ones.
func TestFullRegistryForgetsLeastRecentlyHeard(t *testing.T) {
	g := newTestRegistry(3)
	t0 := time.UnixMilli(1_000_000)
	for i := range 3 {
		g.Update(rd("lab", fmt.Sprintf("fake%d", i), 1000, 1), t0.Add(time.Duration(i)*time.Second))
	}
	g.Update(rd("lab", "fake0", 2000, 1), t0.Add(10*time.Second)) // fake0 heard again: now fake1 is the oldest
	g.Update(rd("lab", "real", 1000, 20), t0.Add(20*time.Second))
	if _, ok := g.Device("lab", "real"); !ok {
		t.Fatal("the new device is not kept")
	}
	if _, ok := g.Device("lab", "fake1"); ok {
		t.Fatal("the device heard from least recently is still kept")
	}
	for _, d := range []string{"fake0", "fake2"} {
		if _, ok := g.Device("lab", d); !ok {
			t.Fatalf("%s was forgotten", d)
		}
	}
	// Seeding after a restart: what InfluxDB knows is kept only as far as
	// it is more recent than what is already there.
	g.Seed("lab", "old", "temperature", Point{T: 1, V: 1}, t0.UnixMilli())
	if _, ok := g.Device("lab", "old"); ok {
		t.Fatal("a seeded device older than every kept one pushed out a newer one")
	}
}

// What the registry charges is what its devices take on the heap, within
// a fifth, from one metric to MaxMetrics: the budget is real memory.
func TestAccountingMatchesHeap(t *testing.T) {
	for _, metrics := range []int{1, 4, MaxMetrics} {
		before := heapAfterGC()
		g := NewRegistry(1 << 40)
		fill(g, 2000, metrics, time.UnixMilli(1_000_000))
		heap := float64(heapAfterGC() - before)
		ratio := heap / float64(g.Bytes())
		t.Logf("%d metrics: heap %.0f B/device, charged %.0f B/device", metrics, heap/2000, float64(g.Bytes())/2000)
		if ratio < 0.8 || ratio > 1.2 {
			t.Errorf("%d metrics: heap %.0f B, charged %d B (ratio %.2f)", metrics, heap, g.Bytes(), ratio)
		}
		runtime.KeepAlive(g)
	}
}
