package reading_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func validAggregate() reading.Aggregate {
	return reading.Aggregate{
		Site:   "lab",
		Device: "t1",
		Window: "1m",
		Start:  1732560000000,
		End:    1732560060000,
		Metrics: map[string]reading.Stats{
			"temperature": {Count: 3, Sum: 63, Min: 20, Max: 22, Mean: 21, First: 20, Last: 22},
		},
	}
}

func TestAggregateMsgID(t *testing.T) {
	a := validAggregate()
	if got, want := a.MsgID(), "agg.1m.lab.t1.1732560000000"; got != want {
		t.Fatalf("MsgID() = %q, want %q", got, want)
	}

	// A window flushed again after a takeover is the same message, whatever
	// its content and end.
	again := validAggregate()
	again.Metrics = map[string]reading.Stats{"humidity": {Count: 1}}
	again.End++
	if again.MsgID() != a.MsgID() {
		t.Fatalf("re-flushed window: MsgID() = %q, want %q", again.MsgID(), a.MsgID())
	}

	tests := []struct {
		name   string
		mutate func(a *reading.Aggregate)
	}{
		{"window", func(a *reading.Aggregate) { a.Window = "10s" }},
		{"site", func(a *reading.Aggregate) { a.Site = "lab2" }},
		{"device", func(a *reading.Aggregate) { a.Device = "t2" }},
		{"start", func(a *reading.Aggregate) { a.Start += 60000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := validAggregate()
			tt.mutate(&b)
			if b.MsgID() == a.MsgID() {
				t.Fatalf("MsgID() unchanged after changing %s: %q", tt.name, b.MsgID())
			}
		})
	}
}

func TestUnmarshalAggregate(t *testing.T) {
	encode := func(mutate func(a *reading.Aggregate)) string {
		a := validAggregate()
		mutate(&a)
		data, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	tests := []struct {
		name      string
		in        string
		wantName  bool // want ErrName
		decodeErr bool // want a decode error
	}{
		{name: "valid", in: encode(func(*reading.Aggregate) {})},
		{name: "valid with several metrics", in: encode(func(a *reading.Aggregate) { a.Metrics["humidity"] = reading.Stats{Count: 1} })},
		{name: "not json", in: `agg`, decodeErr: true},
		{name: "truncated", in: `{"site":"lab"`, decodeErr: true},
		{name: "stats as number", in: `{"site":"lab","device":"t1","window":"1m","metrics":{"t":1}}`, decodeErr: true},
		{name: "count as float", in: `{"site":"lab","device":"t1","window":"1m","metrics":{"t":{"count":1.5}}}`, decodeErr: true},
		{name: "empty object", in: `{}`, wantName: true},
		{name: "site with dot", in: encode(func(a *reading.Aggregate) { a.Site = "lab.x" }), wantName: true},
		{name: "device wildcard", in: encode(func(a *reading.Aggregate) { a.Device = ">" }), wantName: true},
		{name: "empty window", in: encode(func(a *reading.Aggregate) { a.Window = "" }), wantName: true},
		{name: "window with dot", in: encode(func(a *reading.Aggregate) { a.Window = "1.5m" }), wantName: true},
		{name: "window with space", in: encode(func(a *reading.Aggregate) { a.Window = "1 m" }), wantName: true},
		{name: "metric html", in: encode(func(a *reading.Aggregate) { a.Metrics["<img>"] = reading.Stats{} }), wantName: true},
		{name: "metric too long", in: encode(func(a *reading.Aggregate) { a.Metrics[strings.Repeat("m", 65)] = reading.Stats{} }), wantName: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reading.UnmarshalAggregate([]byte(tt.in))
			switch {
			case tt.decodeErr:
				if err == nil || errors.Is(err, reading.ErrName) {
					t.Fatalf("UnmarshalAggregate(%s) = %v, want a decode error", tt.in, err)
				}
				if !strings.Contains(err.Error(), "decode aggregate") {
					t.Fatalf("UnmarshalAggregate(%s) = %v, want context %q", tt.in, err, "decode aggregate")
				}
			case tt.wantName:
				if !errors.Is(err, reading.ErrName) {
					t.Fatalf("UnmarshalAggregate(%s) = %v, want ErrName", tt.in, err)
				}
				if len(err.Error()) > 200 {
					t.Fatalf("error is %d bytes: untrusted name not truncated", len(err.Error()))
				}
			default:
				if err != nil {
					t.Fatalf("UnmarshalAggregate(%s) = %v", tt.in, err)
				}
				var want reading.Aggregate
				if err := json.Unmarshal([]byte(tt.in), &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("UnmarshalAggregate = %+v, want %+v", got, want)
				}
			}
		})
	}
}

func TestAggregateRoundTrip(t *testing.T) {
	a := validAggregate()
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reading.UnmarshalAggregate(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
	}
	if got.MsgID() != a.MsgID() {
		t.Fatalf("MsgID changed across the round trip")
	}
}

func TestWindowName(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{10 * time.Second, "10s"},
		{time.Minute, "1m"},
		{time.Hour, "1h"},
		{90 * time.Second, "90s"},
		{1500 * time.Millisecond, "1500ms"},
		{500 * time.Millisecond, "500ms"},
		{100 * time.Millisecond, "100ms"},
		{time.Second, "1s"},
		{60 * time.Second, "1m"},
		{120 * time.Minute, "2h"},
		{90 * time.Minute, "90m"},
		{24 * time.Hour, "24h"},
		{61 * time.Second, "61s"},
		{time.Minute + 500*time.Millisecond, "60500ms"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			got := reading.WindowName(tt.d)
			if got != tt.want {
				t.Fatalf("WindowName(%s) = %q, want %q", tt.d, got, tt.want)
			}
			// The name is a subject token and a measurement suffix.
			if !reading.ValidName(got) {
				t.Fatalf("WindowName(%s) = %q is not a valid name", tt.d, got)
			}
		})
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct{ got, want string }{
		{reading.TelemetrySubject("lab", "t1"), "telemetry.lab.t1"},
		{reading.AggregateSubject("1m", "lab", "t1"), "aggregates.1m.lab.t1"},
		{reading.AlertSubject("lab", "t1", "hot"), "alerts.lab.t1.hot"},
		{reading.DeadLetterSubject("ingest"), "deadletter.ingest"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("subject = %q, want %q", tt.got, tt.want)
		}
	}
}
