package decode

import (
	"testing"
)

// benchPayloads are typical messages of each form.
var (
	benchJSON  = []byte(`{"ts":1732560000123,"temperature":21.5,"humidity":40.2,"pressure":1013.25,"seq":7}`)
	benchBare  = []byte(`21.5`)
	benchSenML = []byte(`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},` +
		`{"n":"current","u":"A","v":1.2},{"n":"current","t":-1,"v":1.3},{"n":"power","u":"W","v":144.1}]`)
)

func benchDecode(b *testing.B, topic string, payload []byte) {
	b.Helper()
	lim := DefaultLimits()
	if _, err := Decode(topic, payload, testNow, lim); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Decode(topic, payload, testNow, lim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B)  { benchDecode(b, devTopic, benchJSON) }
func BenchmarkDecodeBare(b *testing.B)  { benchDecode(b, metricTopic, benchBare) }
func BenchmarkDecodeSenML(b *testing.B) { benchDecode(b, devTopic, benchSenML) }

// BenchmarkDecodeRejected measures the dead-letter path, which a
// misconfigured fleet can drive as hard as the happy one.
func BenchmarkDecodeRejected(b *testing.B) {
	payload := []byte(`{"temperature":"21.5"}`)
	lim := DefaultLimits()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(devTopic, payload, testNow, lim); err == nil {
			b.Fatal("accepted")
		}
	}
}
