package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeflow/edgeflow/devenv"
)

// testBroker is a mosquitto of the test's own on a free loopback port,
// started by devenv from the configuration the project ships (which keeps
// every QoS 1 message for a subscriber that falls behind).
type testBroker struct {
	t   *testing.T
	p   *devenv.Process
	URL string
}

// startMosquitto starts a broker for the test and stops it at cleanup. It
// skips the test when mosquitto is not installed, except under CI.
func startMosquitto(t *testing.T) *testBroker {
	t.Helper()
	p, err := devenv.StartMosquitto(t.Context(), devenv.MosquittoOptions{Dir: t.TempDir()})
	devenv.RequireInstalled(t, err)
	t.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("stop mosquitto: %v", err)
		}
		if t.Failed() {
			if log, err := p.Log(); err == nil {
				t.Logf("mosquitto log:\n%s", log)
			}
		}
	})
	return &testBroker{t: t, p: p, URL: p.URL}
}

// crash kills mosquitto at once, as a crash would.
func (b *testBroker) crash() {
	if err := b.p.Kill(); err != nil {
		b.t.Errorf("kill mosquitto: %v", err)
	}
}

// restart starts the crashed broker again on the same port and data.
func (b *testBroker) restart() {
	if err := b.p.Restart(context.Background()); err != nil {
		b.t.Errorf("restart mosquitto: %v", err)
	}
}

// collector is a raw paho subscriber on sensors/# that checks and records
// every message it receives.
type collector struct {
	t   *testing.T
	cfg Config

	mu       sync.Mutex
	total    int
	seqs     map[string][]uint64 // by device, in arrival order
	problems []string
}

func subscribe(t *testing.T, url string, cfg Config) *collector {
	t.Helper()
	c := &collector{t: t, cfg: cfg, seqs: map[string][]uint64{}}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("loadgen-test-sub").SetCleanSession(true)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { client.Disconnect(100) })
	if tok := client.Subscribe("sensors/#", 1, c.handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return c
}

func (c *collector) handle(_ mqtt.Client, msg mqtt.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	problem := func(format string, args ...any) {
		if len(c.problems) < 20 {
			c.problems = append(c.problems, fmt.Sprintf("%s %s: ", msg.Topic(), msg.Payload())+fmt.Sprintf(format, args...))
		}
	}
	parts := strings.Split(msg.Topic(), "/")
	if len(parts) != 3 || parts[0] != "sensors" {
		problem("unexpected topic")
		return
	}
	device, err := strconv.Atoi(strings.TrimPrefix(parts[2], "dev-"))
	if err != nil || DeviceName(device) != parts[2] {
		problem("bad device name")
		return
	}
	if parts[1] != c.cfg.SiteName(device) {
		problem("site %s, want %s", parts[1], c.cfg.SiteName(device))
	}
	var fields map[string]json.Number
	dec := json.NewDecoder(strings.NewReader(string(msg.Payload())))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		problem("decode: %v", err)
		return
	}
	seq, err := strconv.ParseUint(fields["seq"].String(), 10, 64)
	if err != nil {
		problem("seq: %v", err)
		return
	}
	ts, err := fields["ts"].Int64()
	if now := time.Now().UnixMilli(); err != nil || ts > now || ts < now-60_000 {
		problem("ts %v not a recent Unix ms time", fields["ts"])
	}
	if len(fields) != 2+c.cfg.Metrics {
		problem("%d fields, want ts, seq and %d metrics", len(fields), c.cfg.Metrics)
	}
	for m := range c.cfg.Metrics {
		got, err := fields[MetricName(m)].Float64()
		if want := Value(m, device, seq); err != nil || got != want {
			problem("%s = %v, want %v", MetricName(m), fields[MetricName(m)], want)
		}
	}
	c.seqs[parts[2]] = append(c.seqs[parts[2]], seq)
}

// waitFor waits until n messages arrived (or a little longer, to catch extras).
func (c *collector) waitFor(n int) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.mu.Lock()
		got := c.total
		c.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // anything extra would show up now
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.total != n {
		c.t.Errorf("subscriber received %d messages, want %d", c.total, n)
	}
	for _, p := range c.problems {
		c.t.Error(p)
	}
}
