package main

import (
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// At a flush the worker sends the live feed the newest reading of each
// device it folded since the last flush: readings already waiting when it
// starts are folded in one fetch, so the dashboard gets one reading per
// device, the newest, not every reading.
func TestFlushSendsNewestReadingPerDeviceLive(t *testing.T) {
	b := newTestBus(t)
	influx := startInflux(t)
	sub, err := b.nc.SubscribeSync(bus.LiveSubjects)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Minute).UnixMilli()
	r := func(dev string, dt int64, v float64) reading.Reading {
		return reading.Reading{Site: "lab", Device: dev, TS: base + dt, Metrics: map[string]float64{"t": v}, Received: base + dt}
	}
	b.publish(t, r("d1", 0, 1), r("d2", 0, 2), r("d1", 100, 3), r("d1", 200, 4))
	testWorker(t, b, influx.URL, nil)

	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != bus.LiveSubject("0") {
		t.Fatalf("live feed on %s", m.Subject)
	}
	var got []reading.Reading
	reading.EachInBatch(m.Data, func(data []byte) bool {
		r, err := reading.Decode(data)
		if err != nil {
			t.Fatalf("live reading %q: %v", data, err)
		}
		got = append(got, r)
		return true
	})
	if len(got) != 2 || got[0].Device != "d1" || got[0].Metrics["t"] != 4 || got[1].Device != "d2" || got[1].Metrics["t"] != 2 {
		t.Fatalf("live feed = %+v; want d1's newest (t=4), then d2's (t=2)", got)
	}
	if m, err := sub.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("a second live message with nothing new: %q", m.Data)
	}
}
