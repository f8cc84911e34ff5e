package window

import (
	"fmt"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

const benchDevices = 1000

// benchReadings returns one reading per device of a partition of
// benchDevices devices with 3 metrics each, at one event time.
func benchReadings() []reading.Reading {
	rs := make([]reading.Reading, benchDevices)
	for i := range rs {
		rs[i] = reading.Reading{
			Site:    fmt.Sprintf("site-%d", i%10),
			Device:  fmt.Sprintf("dev-%04d", i),
			Metrics: map[string]float64{"temperature": 21.5, "humidity": 40.25, "pressure": 1013.1},
		}
	}
	return rs
}

// benchState is a partition in steady state: every device reported once a
// second for 45 s (so both a 10s and a 1m window are open, and often two
// 10s windows), with varied values.
func benchState(b *testing.B) (*State, []reading.Reading, int64) {
	s := NewState(testConfig())
	rs := benchReadings()
	ts := t0
	for sec := range int64(45) {
		ts = t0 + sec*1_000
		for i := range rs {
			rs[i].TS, rs[i].Received = ts+int64(i), ts+int64(i)
			for name := range rs[i].Metrics {
				rs[i].Metrics[name] += 0.125
			}
			s.Add(rs[i])
		}
		s.Listen(time.Second)
		s.CloseDue(wall(ts), true)
	}
	if s.Open() < 2*benchDevices {
		b.Fatalf("steady state has %d windows", s.Open())
	}
	return s, rs, ts
}

// BenchmarkAdd: 1000 devices × 3 metrics, each device once a second;
// windows close every simulated second (outside the timer).
func BenchmarkAdd(b *testing.B) {
	s, rs, ts := benchState(b)
	ts += 1_000
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		r := &rs[i]
		r.TS, r.Received = ts+int64(i), ts+int64(i)
		s.Add(*r)
		if i++; i == len(rs) {
			i = 0
			ts += 1_000
			b.StopTimer()
			s.Listen(time.Second)
			s.CloseDue(wall(ts), true)
			b.StartTimer()
		}
	}
}

// BenchmarkCloseDue: one call over 1000 devices. "idle" is the common call
// that closes nothing; "boundary" closes 1000 10s windows (state rebuilt
// outside the timer).
func BenchmarkCloseDue(b *testing.B) {
	b.Run("idle", func(b *testing.B) {
		s, _, ts := benchState(b)
		b.ReportAllocs()
		for b.Loop() {
			if len(s.CloseDue(wall(ts), true)) != 0 {
				b.Fatal("closed something")
			}
		}
	})
	b.Run("boundary", func(b *testing.B) {
		s, _, ts := benchState(b)
		data, _ := s.MarshalBinary()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			st := NewState(testConfig())
			if err := st.UnmarshalBinary(data); err != nil {
				b.Fatal(err)
			}
			st.Listen(6 * time.Second)
			b.StartTimer()
			// The 10s windows [30s, 40s) of every device, due after 6 s
			// of silence.
			if n := len(st.CloseDue(wall(ts+6_000), true)); n != benchDevices {
				b.Fatalf("closed %d windows", n)
			}
		}
	})
}

// BenchmarkMarshal encodes the checkpoint of 1000 devices × 3 metrics.
func BenchmarkMarshal(b *testing.B) {
	s, _, _ := benchState(b)
	data, _ := s.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "checkpoint-bytes")
}

// BenchmarkUnmarshal loads the checkpoint of 1000 devices × 3 metrics.
func BenchmarkUnmarshal(b *testing.B) {
	s, _, _ := benchState(b)
	data, _ := s.MarshalBinary()
	b.ReportAllocs()
	for b.Loop() {
		if err := NewState(testConfig()).UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data)), "checkpoint-bytes")
}

// BenchmarkAddRate: devices sending with a sequence number and their own
// time, so each reading has an identity; "1Hz" is 1000 devices once a
// second, "100Hz" 10 devices 100 times a second (6,500 readings in each
// device's open 1m window plus lateness), "100Hz-seq-only" the same without
// their own time (identities looked up in an index). Windows close every simulated
// second, outside the timer, after a warm-up of 124 s, when a minute of
// identities is kept: it reports the checkpoint's size per device then,
// and the part the identities take.
func BenchmarkAddRate(b *testing.B) {
	for _, bc := range []struct {
		name        string
		devices, hz int
		deviceTime  bool
	}{{"1Hz", 1000, 1, true}, {"100Hz", 10, 100, true}, {"100Hz-seq-only", 10, 100, false}} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewState(testConfig())
			rs := benchReadings()[:bc.devices]
			seqs := make([]uint64, len(rs))
			for i := range rs {
				rs[i].DeviceTime = bc.deviceTime
				rs[i].Seq = &seqs[i]
			}
			step := int64(1_000 / bc.hz)
			ts := t0
			// next adds the next reading of every device at ts.
			next := func() {
				for i := range rs {
					seqs[i]++
					rs[i].TS, rs[i].Received = ts+int64(i%int(step)), ts+int64(i%int(step))
					rs[i].Metrics["temperature"] += 0.125
					s.Add(rs[i])
				}
			}
			second := func() {
				s.Listen(time.Second)
				s.CloseDue(wall(ts), true)
			}
			for range 124 * bc.hz {
				next()
				if ts += step; (ts-t0)%1_000 == 0 {
					second()
				}
			}
			data, _ := s.MarshalBinary()
			type sets struct {
				dated   datedSet
				undated seenSet
			}
			kept := make(map[*device]sets)
			entries := 0
			for _, d := range s.devices {
				kept[d] = sets{d.dated, d.undated}
				entries += d.dated.len() + d.undated.len()
				d.dated, d.undated = datedSet{}, seenSet{}
			}
			without, _ := s.MarshalBinary()
			for d, e := range kept {
				d.dated, d.undated = e.dated, e.undated
			}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				r := &rs[i]
				seqs[i]++
				r.TS, r.Received = ts+int64(i%int(step)), ts+int64(i%int(step))
				s.Add(*r)
				if i++; i == len(rs) {
					i = 0
					if ts += step; (ts-t0)%1_000 == 0 {
						b.StopTimer()
						second()
						b.StartTimer()
					}
				}
			}
			b.ReportMetric(float64(entries)/float64(len(rs)), "identities/device")
			b.ReportMetric(float64(len(data))/float64(len(rs)), "checkpoint-bytes/device")
			b.ReportMetric(float64(len(data)-len(without))/float64(len(rs)), "identity-bytes/device")
		})
	}
}
