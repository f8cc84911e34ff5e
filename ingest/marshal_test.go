package main

import (
	"bytes"
	"math"
	"testing"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func TestMarshalReadingMatchesEncodingJSON(t *testing.T) {
	seq := uint64(18446744073709551615)
	zero := uint64(0)
	cases := []reading.Reading{
		{Site: "s", Device: "d", TS: 1732560000100, Metrics: map[string]float64{"t": 21.5}, Received: 1732560000123},
		{Site: "site-0", Device: "dev_01", TS: -5, Seq: &seq, DeviceTime: true, Received: 0,
			Metrics: map[string]float64{"z": 0, "a": -0.0, "B": 1e-7, "b": 1e21, "c": 123456789e300, "d": -1e-300,
				"e": 0.000001, "f": 1e20, "g": math.SmallestNonzeroFloat64, "h": math.MaxFloat64, "i": 3, "j": -2.5e-9}},
		{Site: "x", Device: "y", Seq: &zero},
		{Site: "x", Device: "y", Metrics: map[string]float64{}},
		{Site: "bad<site>", Device: "y", Metrics: map[string]float64{"t": 1}},
		{Site: "x", Device: "y", Metrics: map[string]float64{"a&b": 1}},
	}
	for _, r := range cases {
		want, wantErr := r.Marshal()
		got, err := marshalReading(&r)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("marshalReading(%+v)\n got %s, %v\nwant %s, %v", r, got, err, want, wantErr)
		}
	}
	bad := reading.Reading{Site: "x", Device: "y", Metrics: map[string]float64{"n": math.NaN()}}
	if _, err := marshalReading(&bad); err == nil {
		t.Error("NaN marshalled without an error")
	}
}

func FuzzMarshalReading(f *testing.F) {
	f.Add("site", "dev", int64(1732560000100), uint64(7), true, "temperature", 21.5, "humidity", 1e-7, int64(1))
	f.Fuzz(func(t *testing.T, site, device string, ts int64, seq uint64, dt bool, n1 string, v1 float64, n2 string, v2 float64, rx int64) {
		r := reading.Reading{Site: site, Device: device, TS: ts, DeviceTime: dt, Received: rx,
			Metrics: map[string]float64{n1: v1, n2: v2}}
		if seq%2 == 0 {
			r.Seq = &seq
		}
		want, wantErr := r.Marshal()
		got, err := marshalReading(&r)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("marshalReading(%+v)\n got %s, %v\nwant %s, %v", r, got, err, want, wantErr)
		}
	})
}
