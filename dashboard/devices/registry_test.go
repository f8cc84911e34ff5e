package devices

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func rd(site, dev string, ts int64, v float64) *reading.Reading {
	return &reading.Reading{Site: site, Device: dev, TS: ts, Metrics: map[string]float64{"temperature": v}}
}

// Readings in the same second coalesce into one point; the live tick gets
// one update per changed device, with the newest value.
func TestCoalescing(t *testing.T) {
	g := newTestRegistry(10)
	now := time.UnixMilli(1_000_000)
	for i := range 10 {
		g.Update(rd("lab", "t1", 1_000_000+int64(i)*50, float64(i)), now) // 10 readings within 0.5 s
	}
	g.Update(rd("lab", "t1", 1_001_200, 42), now)
	g.Update(rd("lab", "t1", 999_000, -1), now) // older: ignored by the ring
	ups := g.TakeChanged()
	if len(ups) != 1 || ups[0].Metrics["temperature"] != (Point{1_001_200, 42}) {
		t.Fatalf("updates %+v", ups)
	}
	if len(g.TakeChanged()) != 0 {
		t.Fatal("second take not empty")
	}
	d, _ := g.Device("lab", "t1")
	if pts := d.Metrics["temperature"].Points; len(pts) != 2 || pts[0] != (Point{1_000_450, 9}) {
		t.Fatalf("points %+v", pts)
	}
	data, _ := json.Marshal(d.Metrics["temperature"].Last)
	if string(data) != "[1001200,42]" {
		t.Fatalf("point JSON %s", data)
	}
}

func TestBounded(t *testing.T) {
	g := newTestRegistry(3)
	for i := range 5 {
		g.Update(rd("lab", fmt.Sprintf("d%d", 4-i), int64(i)*1000, 1), time.UnixMilli(int64(i)))
	}
	if g.Len() != 3 || g.Evicted() != 2 {
		t.Fatalf("len %d evicted %d", g.Len(), g.Evicted())
	}
	for i := range RingLen * 2 {
		g.Update(rd("lab", "d0", int64(i+10)*1000, float64(i)), time.UnixMilli(10))
	}
	d, _ := g.Device("lab", "d0")
	if n := len(d.Metrics["temperature"].Points); n != RingLen {
		t.Fatalf("ring holds %d points", n)
	}
	o := g.Overview()
	if len(o) != 3 || len(o[0].Metrics["temperature"].Spark) != SparkLen {
		t.Fatalf("overview %+v", o[0])
	}
	many := &reading.Reading{Site: "lab", Device: "d1", TS: 1, Metrics: map[string]float64{}}
	for i := range MaxMetrics + 10 {
		many.Metrics[fmt.Sprintf("m%d", i)] = 1
	}
	g.Update(many, time.Now())
	if d, _ := g.Device("lab", "d1"); len(d.Metrics) != MaxMetrics {
		t.Fatalf("%d metrics kept", len(d.Metrics))
	}
	g.Seed("lab", "<b>", "t", Point{}, 0)
	if _, ok := g.Device("lab", "<b>"); ok {
		t.Fatal("seeded an invalid name")
	}
}

// A metric's unit, as the device sent it, is on the overview and the
// device page; a reading without one keeps the unit already known.
func TestUnitFollowsTheMetric(t *testing.T) {
	g := NewRegistry(1 << 20)
	now := time.Now()
	g.Update(&reading.Reading{Site: "lab", Device: "t1", TS: now.UnixMilli(), Metrics: map[string]float64{"temp": 21, "n": 1},
		Units: map[string]string{"temp": "Cel"}}, now)
	g.Update(&reading.Reading{Site: "lab", Device: "t1", TS: now.UnixMilli() + 2000, Metrics: map[string]float64{"temp": 22}}, now)
	o := g.Overview()
	if len(o) != 1 || o[0].Metrics["temp"].Unit != "Cel" || o[0].Metrics["n"].Unit != "" {
		t.Fatalf("overview units: %+v", o)
	}
	d, _ := g.Device("lab", "t1")
	if d.Metrics["temp"].Unit != "Cel" {
		t.Fatalf("device units: %+v", d)
	}
}
