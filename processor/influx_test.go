package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// InfluxDB's answers, as influxdb-client-go decodes them: 1.8 puts its
// error text in Message with the status line as Code; 2.x has a code of its
// own. Only points refused for what they are may be dead-lettered.
func TestWriteFaultsTellBadPointsFromTheServers(t *testing.T) {
	v18 := func(status int, msg string) error {
		return &ihttp.Error{StatusCode: status, Code: strconv.Itoa(status) + " " + http.StatusText(status), Message: msg}
	}
	v2 := func(status int, code, msg string) error {
		return &ihttp.Error{StatusCode: status, Code: code, Message: msg}
	}
	for _, c := range []struct {
		err     error
		fault   WriteFault
		dropped int
	}{
		{v18(404, `database not found: "w"`), FaultMissing, -1},
		{v2(404, "not found", `bucket "w" not found`), FaultMissing, -1},
		{v18(500, `retention policy not found: weekly`), FaultUnavailable, -1},
		{v18(413, "Request Entity Too Large"), FaultTooLarge, -1},
		{v2(413, "request too large", "unable to read data: points batch is too large"), FaultTooLarge, -1},
		{v18(400, `partial write: max-values-per-tag limit exceeded (10/10): measurement="telemetry" tag="device" value="d10" dropped=150`), FaultLimit, 150},
		{v18(400, `partial write: max-series-per-database limit exceeded: (1000) dropped=2`), FaultLimit, 2},
		{v18(400, `partial write: shard 5 is pending deletion dropped=10`), FaultUnavailable, 10},
		{v18(400, `partial write: field type conflict: input field "t" on measurement "telemetry" is type integer, already exists as type float dropped=3`), FaultPoints, 3},
		{v18(400, `partial write: points beyond retention policy dropped=7`), FaultPoints, 7},
		{v18(400, `unable to parse 'telemetry t=x 1': invalid boolean`), FaultPoints, -1},
		{v2(400, "invalid", `unable to parse 'telemetry t=x 1': invalid boolean`), FaultPoints, -1},
		{v2(422, "unprocessable entity", `failure writing points to database: partial write: field type conflict: input field "count" on measurement "telemetry_1m" is type float, already exists as type integer dropped=1`), FaultPoints, 1},
		{fmt.Errorf("write: %w", v18(400, "")), FaultPoints, -1},
		{v18(401, "authorization failed"), FaultUnavailable, -1}, // a configuration problem: wait, do not drop
		{v18(403, `"u" user is not authorized to write to database "w"`), FaultUnavailable, -1},
		{v2(429, "too many requests", "exceeded rate limit"), FaultUnavailable, -1},
		{v18(405, ""), FaultUnavailable, -1}, // not InfluxDB answering: nothing said about the points
		{v2(503, "unavailable", "service temporarily unavailable"), FaultUnavailable, -1},
	} {
		var we *WriteError
		if !errors.As(classify(c.err), &we) {
			t.Errorf("%v: not a WriteError", c.err)
			continue
		}
		if we.Fault != c.fault || we.Dropped != c.dropped {
			t.Errorf("%v: fault %d dropped %d, want %d dropped %d", c.err, we.Fault, we.Dropped, c.fault, c.dropped)
		}
	}
	for _, err := range []error{errors.New("connection refused"), ihttp.NewError(errors.New("dial tcp: connection refused")), nil} {
		var we *WriteError
		if errors.As(classify(err), &we) {
			t.Errorf("%v: a WriteError, want the error as it is (no answer from InfluxDB)", err)
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
	// The hub's window: one more tag, in key order.
	b.AddHubAggregate("greenhouse-north", &a)
	hub := "telemetry_1m,device=t1,edge_site=greenhouse-north,metric=temperature,site=lab count=3i,sum=6,min=1,max=3,mean=2,first=1,last=3e+21 1732560000000000000\n"
	if got := b.Lines(2, 3); got != hub {
		t.Fatalf("hub window line %q, want %q", got, hub)
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

// Lines dead-lettered together are split into records of whole lines that
// fit a dead letter's body: none is truncated.
func TestRejectedLinesKeepEveryLine(t *testing.T) {
	w := &lineWriter{metrics: NewMetrics(prometheus.NewRegistry()), now: time.Now}
	line := "telemetry,device=d,site=lab t=" + strings.Repeat("1", 70) + " 1732560000000000000\n"
	body := strings.Repeat(line, 2*bus.MaxDeadLetterBody/len(line)+10)
	w.rejectLines(body, errors.New("refused"))
	var got strings.Builder
	for _, m := range w.dead {
		if len(m.Data) > bus.MaxDeadLetterBody || m.Header.Get(bus.HeaderOriginalSize) != "" || !strings.HasSuffix(string(m.Data), "\n") {
			t.Fatalf("record of %d bytes, original size %q: not whole lines within a record", len(m.Data), m.Header.Get(bus.HeaderOriginalSize))
		}
		got.Write(m.Data)
	}
	if len(w.dead) != 3 || got.String() != body {
		t.Fatalf("%d records holding %d of %d bytes, want 3 holding every line", len(w.dead), got.Len(), len(body))
	}
	if n := testutil.ToFloat64(w.metrics.DeadLettered.WithLabelValues("influx_rejected")); n != 3 {
		t.Fatalf("%v records counted, want 3", n)
	}
}
