package main

import (
	"reflect"
	"testing"

	"github.com/edgeflow/edgeflow/internal/reading"
)

var decodeSeeds = []string{
	`{"site":"site-0","device":"dev-0001","ts":1732560000100,"seq":7,"metrics":{"humidity":48.3,"pressure":1004.6,"temperature":21.5},"rx":1732560000123,"dt":true}`,
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

// The fast path must decode exactly what reading.Unmarshal decodes, and
// whatever it declines goes to reading.Unmarshal.
func checkDecode(t *testing.T, data []byte) {
	want, wantErr := reading.Unmarshal(data)
	got, err := decodeReading(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%s: error %v, reading.Unmarshal's %v", data, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", data, got, want)
	}
	if r, ok := parseCompact(data); ok && (wantErr != nil && r.Validate() == nil) {
		t.Fatalf("%s: fast path accepted what reading.Unmarshal refused: %v", data, wantErr)
	}
}

func TestDecodeReadingMatchesUnmarshal(t *testing.T) {
	for _, s := range decodeSeeds {
		checkDecode(t, []byte(s))
	}
	if _, ok := parseCompact([]byte(decodeSeeds[0])); !ok {
		t.Error("ingest's form did not take the fast path")
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
		if _, err := decodeReading(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalReading(b *testing.B) {
	data := []byte(decodeSeeds[0])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reading.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}
