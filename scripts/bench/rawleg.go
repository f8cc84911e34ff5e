package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// RawLeg is what the broker alone carries on this machine: the same load
// generator through the same Mosquitto to one plain paho subscriber (QoS 1),
// measured before ingest subscribes. The pipeline's sustained rate is
// reported as a ratio to Rate.
type RawLeg struct {
	Published int64   `json:"published"` // acknowledged to the load generator
	Received  int64   `json:"received"`
	Seconds   float64 `json:"seconds"` // first to last message received
	// Rate is received messages per second at the subscriber.
	Rate float64 `json:"msgs_per_s"`
	// PublishRate is the load generator's achieved rate (PUBACKs).
	PublishRate float64 `json:"publish_msgs_per_s"`
}

// counter counts the messages a subscriber receives and when the first and
// last arrived.
type counter struct {
	n           atomic.Int64
	mu          sync.Mutex
	first, last time.Time
}

func (c *counter) handle(_ mqtt.Client, _ mqtt.Message) {
	now := time.Now()
	c.n.Add(1)
	c.mu.Lock()
	if c.first.IsZero() {
		c.first = now
	}
	c.last = now
	c.mu.Unlock()
}

// runRawLeg publishes l (Rate 0, a Count) and counts what a subscriber to
// sensors/# receives; it waits up to settle for the last messages.
func runRawLeg(ctx context.Context, loadgenBin, dir string, l Load, settle time.Duration) (RawLeg, error) {
	var c counter
	opts := mqtt.NewClientOptions().AddBroker(l.Broker).SetClientID("bench-raw-subscriber").
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return RawLeg{}, fmt.Errorf("raw leg: connect subscriber: %v", tok.Error())
	}
	defer client.Disconnect(250)
	if tok := client.Subscribe("sensors/#", 1, c.handle); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		return RawLeg{}, fmt.Errorf("raw leg: subscribe: %v", tok.Error())
	}

	rep, err := runLoadgen(ctx, loadgenBin, dir, l)
	if err != nil {
		return RawLeg{}, fmt.Errorf("raw leg: %w", err)
	}
	deadline := time.Now().Add(settle)
	for c.n.Load() < rep.Totals.Acked && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := RawLeg{Published: rep.Totals.Acked, Received: c.n.Load(), PublishRate: rep.AchievedRate}
	if r.Seconds = c.last.Sub(c.first).Seconds(); r.Seconds > 0 {
		r.Rate = float64(r.Received) / r.Seconds
	}
	return r, nil
}
