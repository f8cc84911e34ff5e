package reading_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func ptr[T any](v T) *T { return &v }

func validReading() reading.Reading {
	return reading.Reading{
		Site:       "lab",
		Device:     "t1",
		TS:         1732560000123,
		Seq:        ptr(uint64(42)),
		Metrics:    map[string]float64{"temperature": 21.5, "humidity": 40},
		Received:   1732560000200,
		DeviceTime: true,
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	tests := []struct {
		name   string
		mutate func(r *reading.Reading)
		want   error // nil: valid
	}{
		{"valid", func(*reading.Reading) {}, nil},
		{"valid without seq or device time", func(r *reading.Reading) { r.Seq = nil; r.DeviceTime = false }, nil},
		{"valid negative and zero values", func(r *reading.Reading) {
			r.Metrics = map[string]float64{"a": -1e308, "b": 0, "c": math.SmallestNonzeroFloat64}
		}, nil},
		{"valid max float", func(r *reading.Reading) { r.Metrics = map[string]float64{"a": math.MaxFloat64} }, nil},
		{"empty site", func(r *reading.Reading) { r.Site = "" }, reading.ErrName},
		{"site with dot", func(r *reading.Reading) { r.Site = "lab.x" }, reading.ErrName},
		{"site wildcard", func(r *reading.Reading) { r.Site = ">" }, reading.ErrName},
		{"site too long", func(r *reading.Reading) { r.Site = long }, reading.ErrName},
		{"empty device", func(r *reading.Reading) { r.Device = "" }, reading.ErrName},
		{"device wildcard", func(r *reading.Reading) { r.Device = "*" }, reading.ErrName},
		{"device with newline", func(r *reading.Reading) { r.Device = "t1\nX-Injected: 1" }, reading.ErrName},
		{"nil metrics", func(r *reading.Reading) { r.Metrics = nil }, reading.ErrMetrics},
		{"empty metrics", func(r *reading.Reading) { r.Metrics = map[string]float64{} }, reading.ErrMetrics},
		{"empty metric name", func(r *reading.Reading) { r.Metrics = map[string]float64{"": 1} }, reading.ErrName},
		{"metric name with space", func(r *reading.Reading) { r.Metrics = map[string]float64{"a b": 1} }, reading.ErrName},
		{"metric name html", func(r *reading.Reading) { r.Metrics = map[string]float64{"<b>": 1} }, reading.ErrName},
		{"metric name too long", func(r *reading.Reading) { r.Metrics = map[string]float64{long: 1} }, reading.ErrName},
		{"NaN", func(r *reading.Reading) { r.Metrics = map[string]float64{"a": math.NaN()} }, reading.ErrMetrics},
		{"+Inf", func(r *reading.Reading) { r.Metrics = map[string]float64{"a": math.Inf(1)} }, reading.ErrMetrics},
		{"-Inf", func(r *reading.Reading) { r.Metrics = map[string]float64{"a": math.Inf(-1)} }, reading.ErrMetrics},
		{"one bad among good", func(r *reading.Reading) { r.Metrics["pressure"] = math.Inf(1) }, reading.ErrMetrics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validReading()
			tt.mutate(&r)
			err := r.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate() = %v, want errors.Is %v", err, tt.want)
			}
			// Errors quote untrusted names, truncated: a hostile name must not
			// become a huge log line.
			if len(err.Error()) > 200 {
				t.Fatalf("error is %d bytes long: untrusted input not truncated", len(err.Error()))
			}
		})
	}
}

func TestMarshalUnmarshalRoundTrip(t *testing.T) {
	for _, r := range []reading.Reading{
		validReading(),
		{Site: "s", Device: "d", TS: 1, Metrics: map[string]float64{"m": -0.5}, Received: 2},
		{Site: "s", Device: "d", TS: 0, Seq: ptr(uint64(0)), Metrics: map[string]float64{"m": 1e-300}},
		{Site: "s", Device: "d", Seq: ptr(uint64(math.MaxUint64)), Metrics: map[string]float64{"m": 1}},
	} {
		data, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := reading.Unmarshal(data)
		if err != nil {
			t.Fatalf("Unmarshal(%s) = %v", data, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip of %s:\n got %+v\nwant %+v", data, got, r)
		}
		gotID, gotOK := got.Identity()
		wantID, wantOK := r.Identity()
		if gotID != wantID || gotOK != wantOK {
			t.Fatalf("Identity changed across the round trip: %x %v vs %x %v", gotID, gotOK, wantID, wantOK)
		}
	}
}

func TestMarshalFieldNames(t *testing.T) {
	r := validReading()
	r.Metrics = map[string]float64{"temperature": 21.5}
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"site":"lab","device":"t1","ts":1732560000123,"seq":42,"metrics":{"temperature":21.5},"rx":1732560000200,"dt":true}`
	if string(data) != want {
		t.Fatalf("Marshal = %s\nwant      %s", data, want)
	}
	r.Seq, r.DeviceTime = nil, false
	data, _ = r.Marshal()
	if strings.Contains(string(data), `"seq"`) || strings.Contains(string(data), `"dt"`) {
		t.Fatalf("Marshal without seq and device time = %s: seq and dt must be omitted", data)
	}
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error // nil with decodeErr false: valid
		// decodeErr: a JSON error, neither ErrName nor ErrMetrics.
		decodeErr bool
	}{
		{name: "valid", in: `{"site":"lab","device":"t1","ts":1,"metrics":{"t":1}}`},
		{name: "valid with seq and dt", in: `{"site":"lab","device":"t1","ts":1,"seq":7,"dt":true,"metrics":{"t":1}}`},
		{name: "empty input", in: ``, decodeErr: true},
		{name: "not json", in: `temperature=21.5`, decodeErr: true},
		{name: "truncated json", in: `{"site":"lab","device":"t1"`, decodeErr: true},
		{name: "array", in: `[1,2]`, decodeErr: true},
		{name: "metric as string", in: `{"site":"lab","device":"t1","metrics":{"t":"21.5"}}`, decodeErr: true},
		{name: "NaN literal", in: `{"site":"lab","device":"t1","metrics":{"t":NaN}}`, decodeErr: true},
		{name: "Infinity literal", in: `{"site":"lab","device":"t1","metrics":{"t":Infinity}}`, decodeErr: true},
		{name: "overflowing number", in: `{"site":"lab","device":"t1","metrics":{"t":1e400}}`, decodeErr: true},
		{name: "negative seq", in: `{"site":"lab","device":"t1","seq":-1,"metrics":{"t":1}}`, decodeErr: true},
		{name: "site as number", in: `{"site":1,"device":"t1","metrics":{"t":1}}`, decodeErr: true},
		{name: "json null", in: `null`, wantErr: reading.ErrName},
		{name: "empty object", in: `{}`, wantErr: reading.ErrName},
		{name: "site with dot", in: `{"site":"lab.evil","device":"t1","metrics":{"t":1}}`, wantErr: reading.ErrName},
		{name: "site wildcard", in: `{"site":">","device":"t1","metrics":{"t":1}}`, wantErr: reading.ErrName},
		{name: "device star", in: `{"site":"lab","device":"*","metrics":{"t":1}}`, wantErr: reading.ErrName},
		{name: "device escaped newline", in: `{"site":"lab","device":"t1\n","metrics":{"t":1}}`, wantErr: reading.ErrName},
		{name: "device escaped NUL", in: `{"site":"lab","device":"t\u0000","metrics":{"t":1}}`, wantErr: reading.ErrName},
		{name: "device unicode escape of dot", in: `{"site":"lab","device":"t\u002e1","metrics":{"t":1}}`, wantErr: reading.ErrName},
		{name: "device unicode", in: `{"site":"lab","device":"tē","metrics":{"t":1}}`, wantErr: reading.ErrName},
		{name: "device invalid utf8", in: "{\"site\":\"lab\",\"device\":\"t\xff\",\"metrics\":{\"t\":1}}", wantErr: reading.ErrName},
		{name: "metric name html", in: `{"site":"lab","device":"t1","metrics":{"<script>":1}}`, wantErr: reading.ErrName},
		{name: "metric name flux quote", in: `{"site":"lab","device":"t1","metrics":{"t\" or r._value > 0 //":1}}`, wantErr: reading.ErrName},
		{name: "metric name empty", in: `{"site":"lab","device":"t1","metrics":{"":1}}`, wantErr: reading.ErrName},
		{name: "missing metrics", in: `{"site":"lab","device":"t1"}`, wantErr: reading.ErrMetrics},
		{name: "null metrics", in: `{"site":"lab","device":"t1","metrics":null}`, wantErr: reading.ErrMetrics},
		{name: "empty metrics", in: `{"site":"lab","device":"t1","metrics":{}}`, wantErr: reading.ErrMetrics},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := reading.Unmarshal([]byte(tt.in))
			switch {
			case tt.decodeErr:
				if err == nil {
					t.Fatalf("Unmarshal(%s) = nil, want a decode error", tt.in)
				}
				if errors.Is(err, reading.ErrName) || errors.Is(err, reading.ErrMetrics) {
					t.Fatalf("Unmarshal(%s) = %v, want a decode error, not a validation error", tt.in, err)
				}
				if !strings.Contains(err.Error(), "decode reading") {
					t.Fatalf("Unmarshal(%s) = %v, want context %q", tt.in, err, "decode reading")
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Unmarshal(%s) = %v, want errors.Is %v", tt.in, err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Fatalf("Unmarshal(%s) = %v, want nil", tt.in, err)
				}
			}
		})
	}
}
