package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/edgeflow/edgeflow/internal/reading"
)

func TestRejectedTellsContentErrorsFromOutages(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&ihttp.Error{StatusCode: 400}, true},
		{&ihttp.Error{StatusCode: 422}, true},
		{fmt.Errorf("write: %w", &ihttp.Error{StatusCode: 400}), true},
		{&ihttp.Error{StatusCode: 401}, false}, // a configuration problem: wait, do not drop
		{&ihttp.Error{StatusCode: 429}, false},
		{&ihttp.Error{StatusCode: 503}, false},
		{errors.New("connection refused"), false},
	} {
		if got := Rejected(c.err); got != c.want {
			t.Errorf("Rejected(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestPointsFollowTheSchema(t *testing.T) {
	r := reading.Reading{Site: "lab", Device: "t1", TS: 1732560000123, Metrics: map[string]float64{"temperature": 21.5}}
	raw := write.PointToLineProtocol(RawPoint(&r), time.Millisecond)
	if want := "telemetry,device=t1,site=lab temperature=21.5 1732560000123\n"; raw != want {
		t.Fatalf("raw point %q, want %q", raw, want)
	}
	a := reading.Aggregate{Site: "lab", Device: "t1", Window: "1m", Start: 1732560000000, End: 1732560060000,
		Metrics: map[string]reading.Stats{"temperature": {Count: 3, Sum: 6, Min: 1, Max: 3, Mean: 2, First: 1, Last: 3}}}
	pts := WindowPoints(&a)
	if len(pts) != 1 {
		t.Fatalf("%d points, want 1", len(pts))
	}
	line := write.PointToLineProtocol(pts[0], time.Millisecond)
	for _, part := range []string{"telemetry_1m,device=t1,metric=temperature,site=lab ", "count=3i", "sum=6", "min=1", "max=3",
		"mean=2", "first=1", "last=3", " 1732560000000\n"} {
		if !strings.Contains(line, part) {
			t.Errorf("window point %q lacks %q", line, part)
		}
	}
}
