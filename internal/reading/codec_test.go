package reading

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

func TestEncodeMatchesMarshal(t *testing.T) {
	seq := uint64(18446744073709551615)
	zero := uint64(0)
	cases := []Reading{
		{Site: "s", Device: "d", TS: 1732560000100, Metrics: map[string]float64{"t": 21.5}, Received: 1732560000123},
		{Site: "site-0", Device: "dev_01", TS: -5, Seq: &seq, DeviceTime: true, Received: 0,
			Metrics: map[string]float64{"z": 0, "a": -0.0, "B": 1e-7, "b": 1e21, "c": 123456789e300, "d": -1e-300,
				"e": 0.000001, "f": 1e20, "g": math.SmallestNonzeroFloat64, "h": math.MaxFloat64, "i": 3, "j": -2.5e-9}},
		{Site: "x", Device: "y", Seq: &zero},
		{Site: "x", Device: "y", Metrics: map[string]float64{}},
		{Site: "bad<site>", Device: "y", Metrics: map[string]float64{"t": 1}},
		{Site: "x", Device: "y", Metrics: map[string]float64{"a&b": 1}},
		{Site: "x", Device: "y", Metrics: map[string]float64{"t": 1, "h": 2}, Units: map[string]string{"t": "Cel", "h": "%RH"}},
		{Site: "x", Device: "y", Metrics: map[string]float64{"t": 1}, Units: map[string]string{"t": "<b>"}},
		{Site: "x", Device: "y", Metrics: map[string]float64{"t": 1}, Units: map[string]string{}},
	}
	for _, r := range cases {
		want, wantErr := r.Marshal()
		got, err := Encode(&r)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("Encode(%+v)\n got %s, %v\nwant %s, %v", r, got, err, want, wantErr)
		}
	}
	bad := Reading{Site: "x", Device: "y", Metrics: map[string]float64{"n": math.NaN()}}
	if _, err := Encode(&bad); err == nil {
		t.Error("NaN marshalled without an error")
	}
	// Appended after earlier bytes, each case is the same bytes after
	// them; a failure leaves them as they were.
	prefix := []byte("earlier\n")
	for _, r := range cases {
		want, _ := Encode(&r)
		got, err := AppendEncoded(bytes.Clone(prefix), &r)
		if err != nil || !bytes.Equal(got, append(bytes.Clone(prefix), want...)) {
			t.Errorf("AppendEncoded(%+v) = %s, %v", r, got, err)
		}
	}
	if got, err := AppendEncoded(bytes.Clone(prefix), &bad); err == nil || !bytes.Equal(got, prefix) {
		t.Errorf("AppendEncoded of NaN = %q, %v; want the prefix unchanged and an error", got, err)
	}
}

// FuzzReadingRoundTrip holds Encode to Marshal's bytes, and Decode to
// giving back every valid reading Encode wrote, through the compact path.
func FuzzReadingRoundTrip(f *testing.F) {
	f.Add("site", "dev", int64(1732560000100), uint64(7), true, "temperature", 21.5, "humidity", 1e-7, int64(1))
	f.Add("s", "d", int64(-5), uint64(18446744073709551615), false, "a", -0.0, "b", 1e21, int64(0))
	f.Add("site-0", "dev_01", int64(0), uint64(2), false, "g", math.SmallestNonzeroFloat64, "h", math.MaxFloat64, int64(-1))
	f.Fuzz(func(t *testing.T, site, device string, ts int64, seq uint64, dt bool, n1 string, v1 float64, n2 string, v2 float64, rx int64) {
		r := Reading{Site: site, Device: device, TS: ts, DeviceTime: dt, Received: rx,
			Metrics: map[string]float64{n1: v1, n2: v2}}
		if seq%2 == 0 {
			r.Seq = &seq
		}
		want, wantErr := r.Marshal()
		got, err := Encode(&r)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("Encode(%+v)\n got %s, %v\nwant %s, %v", r, got, err, want, wantErr)
		}
		if err != nil || r.Validate() != nil {
			return
		}
		back, err := Decode(got)
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("Decode(%s) = %+v, %v; want %+v", got, back, err, r)
		}
		if _, ok := parseCompact(got); !ok {
			t.Fatalf("%s: Encode's form did not take the fast path", got)
		}
	})
}

var decodeSeeds = []string{
	`{"site":"site-0","device":"dev-0001","ts":1732560000100,"seq":7,"metrics":{"humidity":48.3,"pressure":1004.6,"temperature":21.5},"rx":1732560000123,"dt":true}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"h":2,"t":1},"rx":0,"units":{"h":"%RH","t":"m/s2"}}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"t":1},"rx":0,"units":{"t":"<b>"}}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"t":1},"rx":0,"units":{"x":"Cel"}}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"t":1},"rx":0,"units":{"t":"Cel","t":"V"}}`,
	`{"site":"s","device":"d","ts":-5,"metrics":{"t":1e-7,"u":-0,"v":1E+21},"rx":0}`,
	`{"site":"s","device":"d","ts":5,"metrics":{},"rx":0}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"t":1,"t":2},"rx":0}`,
	`{"site":"s","device":"d","ts":5,"seq":-1,"metrics":{"t":1},"rx":0}`,
	`{"site":"s","device":"d","ts":05,"metrics":{"t":1},"rx":0}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"t":1e999},"rx":0}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"t":1},"rx":0,"dt":false}`,
	`{"site":"s","device":"d","ts":5,"metrics":{"t":1},"rx":0} `,
	`{"Site":"s","device":"d","ts":5,"metrics":{"t":1},"rx":0}`,
	`{"site":"s\u0041","device":"d","ts":5,"metrics":{"t":1},"rx":0}`,
	`{"site":"s","device":"d","ts":5,"seq":18446744073709551615,"metrics":{"t":1.5},"rx":9223372036854775807}`,
}

// The fast path must decode exactly what Unmarshal decodes, and whatever it
// declines goes to Unmarshal.
func checkDecode(t *testing.T, data []byte) {
	want, wantErr := Unmarshal(data)
	got, err := Decode(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%s: error %v, Unmarshal's %v", data, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", data, got, want)
	}
	if r, ok := parseCompact(data); ok && (wantErr != nil && r.Validate() == nil) {
		t.Fatalf("%s: fast path accepted what Unmarshal refused: %v", data, wantErr)
	}
}

func TestDecodeMatchesUnmarshal(t *testing.T) {
	for _, s := range decodeSeeds {
		checkDecode(t, []byte(s))
	}
	for _, s := range decodeSeeds[:2] {
		if _, ok := parseCompact([]byte(s)); !ok {
			t.Errorf("ingest's form did not take the fast path: %s", s)
		}
	}
}

func FuzzDecodeReading(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecode(t, data) })
}

func BenchmarkDecodeReading(b *testing.B) {
	data := []byte(decodeSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalReading(b *testing.B) {
	data := []byte(decodeSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}
