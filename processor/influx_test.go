package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"

	"github.com/edgeflow/edgeflow/internal/influx"
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

func TestBatchFollowsTheSchema(t *testing.T) {
	var b Batch
	r := reading.Reading{Site: "lab", Device: "t1", TS: 1732560000123, Metrics: map[string]float64{"temperature": 21.5}}
	b.AddReading(&r)
	a := reading.Aggregate{Site: "lab", Device: "t1", Window: "1m", Start: 1732560000000, End: 1732560060000,
		Metrics: map[string]reading.Stats{"temperature": {Count: 3, Sum: 6, Min: 1, Max: 3, Mean: 2, First: 1, Last: 3e21}}}
	b.AddAggregate(&a)
	if b.Len() != 2 {
		t.Fatalf("%d lines, want 2", b.Len())
	}
	off := RawOffset(&r)
	if off < 0 || off >= int64(time.Millisecond) {
		t.Fatalf("raw offset %d outside the millisecond", off)
	}
	if got, want := b.Lines(0, 1), "telemetry,device=t1,site=lab temperature=21.5 "+strconv.FormatInt(1732560000123*1e6+off, 10)+"\n"; got != want {
		t.Fatalf("raw line %q, want %q", got, want)
	}
	want := "telemetry_1m,device=t1,metric=temperature,site=lab count=3i,sum=6,min=1,max=3,mean=2,first=1,last=3e+21 1732560000000000000\n"
	if got := b.Lines(1, 2); got != want {
		t.Fatalf("window line %q, want %q", got, want)
	}
	if got := b.Lines(0, 2); got != b.Lines(0, 1)+want {
		t.Fatalf("Lines(0, 2) = %q", got)
	}
	// The same line as the client library's own encoder writes.
	p := write.NewPoint("telemetry", map[string]string{"site": "lab", "device": "t1"},
		map[string]any{"temperature": 21.5}, time.UnixMilli(1732560000123).Add(time.Duration(off)))
	if lib := write.PointToLineProtocol(p, time.Nanosecond); lib != b.Lines(0, 1) {
		t.Fatalf("library encodes %q, Batch %q", lib, b.Lines(0, 1))
	}
	b.Reset()
	if b.Len() != 0 || b.Lines(0, 0) != "" {
		t.Fatal("Reset left lines behind")
	}
}

func BenchmarkBatchAddReading(b *testing.B) {
	r := reading.Reading{Site: "site-1", Device: "dev-0001", TS: 1732560000123,
		Metrics: map[string]float64{"temperature": 21.5, "humidity": 48.25, "pressure": 1013.1}}
	var batch Batch
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%5000 == 0 {
			batch.Reset()
		}
		batch.AddReading(&r)
	}
}

func BenchmarkBatchAddAggregate(b *testing.B) {
	st := reading.Stats{Count: 10, Sum: 215, Min: 20.5, Max: 22.5, Mean: 21.5, First: 21, Last: 22}
	a := reading.Aggregate{Site: "site-1", Device: "dev-0001", Window: "10s", Start: 1732560000000, End: 1732560010000,
		Metrics: map[string]reading.Stats{"temperature": st, "humidity": st, "pressure": st}}
	var batch Batch
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%2000 == 0 {
			batch.Reset()
		}
		batch.AddAggregate(&a)
	}
}

// Two readings of one device in the same millisecond are two raw points in a
// real InfluxDB, not one overwriting the other; the same reading written
// twice (a redelivery) stays one point.
func TestRawReadingsInOneMillisecondAreAllKept(t *testing.T) {
	p := startInflux(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := NewInflux(InfluxConfig{Config: influx.Config{URL: p.URL, Bucket: "w", Timeout: 10 * time.Second}})
	defer f.Close()
	if err := f.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	seq := func(n uint64) *uint64 { return &n }
	const ms = 1732560000123
	readings := []reading.Reading{
		{Site: "lab", Device: "t1", TS: ms, Seq: seq(1), DeviceTime: true, Metrics: map[string]float64{"temperature": 21.5}},
		{Site: "lab", Device: "t1", TS: ms, Seq: seq(2), DeviceTime: true, Metrics: map[string]float64{"temperature": 21.5}},
		{Site: "lab", Device: "t1", TS: ms, DeviceTime: true, Metrics: map[string]float64{"temperature": 22}},
		{Site: "lab", Device: "t1", TS: ms, DeviceTime: true, Metrics: map[string]float64{"temperature": 23}},
	}
	var b Batch
	for i := range readings {
		b.AddReading(&readings[i])
	}
	b.AddReading(&readings[0]) // redelivered
	if err := f.Write(ctx, b.Lines(0, b.Len())); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(ctx, b.Lines(0, 1)); err != nil { // and written again
		t.Fatal(err)
	}
	if n := influxQuery(t, p.URL, `SELECT count(temperature) FROM telemetry`); n != 4 {
		t.Fatalf("%d raw points, want a count of 4", n)
	}
}
