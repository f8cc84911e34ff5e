package reading_test

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func identity(t *testing.T, r reading.Reading) uint64 {
	t.Helper()
	id, ok := r.Identity()
	if !ok {
		t.Fatalf("Identity() of %+v not ok", r)
	}
	return id
}

func TestIdentityNotOkWithoutSeqOrDeviceTime(t *testing.T) {
	r := validReading()
	r.Seq, r.DeviceTime = nil, false
	if id, ok := r.Identity(); ok || id != 0 {
		t.Fatalf("Identity() = %d, %v; want 0, false: ingest-stamped time must not deduplicate", id, ok)
	}
	for _, r := range []reading.Reading{
		{Site: "s", Device: "d", Seq: ptr(uint64(0)), Metrics: map[string]float64{"m": 1}},
		{Site: "s", Device: "d", DeviceTime: true, Metrics: map[string]float64{"m": 1}},
	} {
		identity(t, r)
	}
}

// TestIdentityGolden pins the function: identities are stored in the
// processor's checkpoints, so a change of function (or of Go's map order,
// hash or anything else) must fail here, not silently break deduplication
// across an upgrade.
func TestIdentityGolden(t *testing.T) {
	seqOnly := validReading()
	seqOnly.DeviceTime = false
	timeOnly := validReading()
	timeOnly.Seq = nil
	tests := []struct {
		name string
		r    reading.Reading
		want uint64
	}{
		{"seq and device time", validReading(), 0x49abb90fbcca5b8c},
		{"seq only", seqOnly, 0xad1d146a7ef088b9},
		{"device time only", timeOnly, 0x23c3e73648ff8239},
		{"negative zero", reading.Reading{Site: "s", Device: "d", TS: -1, DeviceTime: true,
			Metrics: map[string]float64{"m": math.Copysign(0, -1)}}, 0x90bc0ebf18c9cae0},
		{"lengths of two bytes", reading.Reading{Site: strings.Repeat("s", 200), Device: "d", Seq: ptr(uint64(1) << 63),
			Metrics: map[string]float64{strings.Repeat("m", 130): 1, "n": 2}}, 0xd3044849fa23f738},
	}
	for _, tt := range tests {
		if got := identity(t, tt.r); got != tt.want {
			t.Errorf("%s: Identity() = %#x, want %#x", tt.name, got, tt.want)
		}
	}
}

// TestIdentityIsFNV1a checks the written-out FNV-1a against hash/fnv, with
// the layout Identity documents.
func TestIdentityIsFNV1a(t *testing.T) {
	long := reading.Reading{Site: strings.Repeat("s", 200), Device: "d", TS: -5, DeviceTime: true,
		Metrics: map[string]float64{strings.Repeat("m", 130): 1, "n": 2}}
	for _, r := range []reading.Reading{validReading(), long} {
		h := fnv.New64a()
		u64 := func(v uint64) { h.Write(binary.BigEndian.AppendUint64(nil, v)) }
		str := func(h hash.Hash64, s string) {
			h.Write(binary.AppendUvarint(nil, uint64(len(s))))
			h.Write([]byte(s))
		}
		flag := func(set bool) {
			if set {
				h.Write([]byte{1})
			} else {
				h.Write([]byte{0})
			}
		}
		str(h, r.Site)
		str(h, r.Device)
		flag(r.Seq != nil)
		if r.Seq != nil {
			u64(*r.Seq)
		}
		flag(r.DeviceTime)
		if r.DeviceTime {
			u64(uint64(r.TS))
		}
		var sum uint64
		for name, v := range r.Metrics {
			m := fnv.New64a()
			str(m, name)
			m.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(v)))
			sum += m.Sum64()
		}
		h.Write(binary.AppendUvarint(nil, uint64(len(r.Metrics))))
		u64(sum)
		if got := identity(t, r); got != h.Sum64() {
			t.Fatalf("Identity() of %.40q… = %#x, hash/fnv gives %#x", r.Site, got, h.Sum64())
		}
	}
}

func TestIdentityStableAcrossMapOrder(t *testing.T) {
	names := make([]string, 40)
	for i := range names {
		names[i] = fmt.Sprintf("m%02d", i)
	}
	build := func(order []string) reading.Reading {
		r := validReading()
		r.Metrics = make(map[string]float64, len(order))
		for _, n := range order {
			r.Metrics[n] = float64(len(n)) * 1.5
		}
		return r
	}
	want := identity(t, build(names))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		order := append([]string(nil), names...)
		rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		if got := identity(t, build(order)); got != want {
			t.Fatalf("build %d: Identity() = %#x, want %#x (map order leaked into the identity)", i, got, want)
		}
	}
}

func TestIdentityDiffers(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *reading.Reading)
	}{
		{"site", func(r *reading.Reading) { r.Site = "lab2" }},
		{"device", func(r *reading.Reading) { r.Device = "t2" }},
		{"site/device boundary", func(r *reading.Reading) { r.Site, r.Device = "labt", "1" }},
		{"seq", func(r *reading.Reading) { r.Seq = ptr(uint64(43)) }},
		{"seq zero", func(r *reading.Reading) { r.Seq = ptr(uint64(0)) }},
		{"seq removed", func(r *reading.Reading) { r.Seq = nil }},
		{"device time", func(r *reading.Reading) { r.TS++ }},
		{"device time flag off", func(r *reading.Reading) { r.DeviceTime = false }},
		{"value", func(r *reading.Reading) { r.Metrics["temperature"] = 21.6 }},
		{"value smallest step", func(r *reading.Reading) {
			r.Metrics["temperature"] = math.Nextafter(r.Metrics["temperature"], math.Inf(1))
		}},
		{"value sign of zero", func(r *reading.Reading) { r.Metrics["temperature"] = math.Copysign(0, -1) }},
		{"metric name", func(r *reading.Reading) {
			r.Metrics = map[string]float64{"temperatureX": 21.5, "humidity": 40}
		}},
		{"metric name boundary", func(r *reading.Reading) {
			r.Metrics = map[string]float64{"temperatur": 21.5, "ehumidity": 40}
		}},
		{"metric added", func(r *reading.Reading) { r.Metrics["pressure"] = 1013 }},
		{"metric removed", func(r *reading.Reading) { delete(r.Metrics, "humidity") }},
		{"values swapped between metrics", func(r *reading.Reading) {
			r.Metrics = map[string]float64{"temperature": 40, "humidity": 21.5}
		}},
	}
	baseID := identity(t, validReading())
	seen := map[uint64]string{baseID: "base"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validReading()
			tt.mutate(&r)
			id := identity(t, r)
			if id == baseID {
				t.Fatalf("Identity() unchanged after changing %s", tt.name)
			}
			if other, dup := seen[id]; dup {
				t.Fatalf("Identity() of %q equals that of %q", tt.name, other)
			}
			seen[id] = tt.name
		})
	}
}

func TestIdentityIgnores(t *testing.T) {
	tests := []struct {
		name   string
		base   func() reading.Reading
		mutate func(r *reading.Reading)
	}{
		{
			"ingest-stamped TS when seq is set",
			func() reading.Reading { r := validReading(); r.DeviceTime = false; return r },
			func(r *reading.Reading) { r.TS += 12345 },
		},
		{"received time", validReading, func(r *reading.Reading) { r.Received += 999 }},
		{"units", validReading, func(r *reading.Reading) { r.Units = map[string]string{"temperature": "Cel"} }},
		{"a seq pointer to an equal value", validReading, func(r *reading.Reading) { r.Seq = ptr(*r.Seq) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.base(), tt.base()
			tt.mutate(&b)
			if identity(t, a) != identity(t, b) {
				t.Fatalf("Identity() changed: %#x vs %#x", identity(t, a), identity(t, b))
			}
		})
	}
}

func BenchmarkIdentity(b *testing.B) {
	r := validReading()
	r.Metrics = map[string]float64{"temperature": 21.5, "humidity": 40.25, "pressure": 1013.1}
	b.ReportAllocs()
	var sink uint64
	for b.Loop() {
		id, _ := r.Identity()
		sink += id
	}
	if sink == 0 {
		b.Fatal("no identity")
	}
}
