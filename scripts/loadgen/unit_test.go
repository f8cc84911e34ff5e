package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPayload(t *testing.T) {
	got := string(appendPayload(nil, 1732560000123, 7, 3, 5))
	want := `{"ts":1732560000123,"seq":7,"temperature":` // the rest is checked by decoding
	if !strings.HasPrefix(got, want) {
		t.Fatalf("payload %s", got)
	}
	var fields map[string]float64
	if err := json.Unmarshal([]byte(got), &fields); err != nil {
		t.Fatalf("payload %s: %v", got, err)
	}
	names := []string{"temperature", "humidity", "pressure", "m3", "m4"}
	if len(fields) != 2+len(names) {
		t.Errorf("payload %s: want ts, seq and %v", got, names)
	}
	for m, name := range names {
		if MetricName(m) != name {
			t.Errorf("MetricName(%d) = %s, want %s", m, MetricName(m), name)
		}
		if fields[name] != Value(m, 3, 7) {
			t.Errorf("%s = %v, want Value = %v", name, fields[name], Value(m, 3, 7))
		}
	}
	if v := fields["temperature"]; v < 10 || v > 30 {
		t.Errorf("temperature %v is not within 20 ± 10", v)
	}
}

func TestDuplicated(t *testing.T) {
	n := 0
	for d := range 10 {
		for s := range uint64(1000) {
			if Duplicated(d, s, 0.25) {
				n++
			}
			if Duplicated(d, s, 0) || !Duplicated(d, s, 1) {
				t.Fatal("fractions 0 and 1 must be never and always")
			}
		}
	}
	if n < 2300 || n > 2700 {
		t.Errorf("%d of 10000 duplicated at 0.25", n)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Count = 10
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults with -count: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"no limit":         {func(c *Config) { c.Count, c.Duration = 0, 0 }, "-count or -duration"},
		"broker":           {func(c *Config) { c.Broker = "localhost" }, "-broker"},
		"scheme":           {func(c *Config) { c.Broker = "http://x:1" }, "unsupported scheme"},
		"sites > devices":  {func(c *Config) { c.Devices, c.Sites, c.Publishers = 2, 3, 1 }, "-sites"},
		"publishers":       {func(c *Config) { c.Devices, c.Sites, c.Publishers = 2, 1, 3 }, "-publishers"},
		"duplicates":       {func(c *Config) { c.Duplicates = 1.5 }, "-duplicates"},
		"rate":             {func(c *Config) { c.Rate = -1 }, "-rate"},
		"qos":              {func(c *Config) { c.QoS = 3 }, "-qos"},
		"prefix":           {func(c *Config) { c.ClientPrefix = "a/b" }, "-client-prefix"},
		"password no user": {func(c *Config) { c.Password = "x" }, "-username"},
		"metrics":          {func(c *Config) { c.Metrics = 0 }, "-metrics"},
	} {
		c := ok
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error about %s", name, err, tc.want)
		}
	}
}

func TestDeviceQuota(t *testing.T) {
	c := DefaultConfig()
	c.Devices, c.Count = 4, 10
	var sum int64
	for d, want := range []int64{3, 3, 2, 2} {
		if q := c.DeviceQuota(d); q != want {
			t.Errorf("DeviceQuota(%d) = %d, want %d", d, q, want)
		}
		sum += c.DeviceQuota(d)
	}
	if sum != c.Count {
		t.Errorf("quotas sum to %d, want %d", sum, c.Count)
	}
	c.Count = 0
	if c.DeviceQuota(0) != -1 {
		t.Error("no count must be no quota")
	}
	c.Sites = 3
	if got := c.Topic(4); got != "sensors/site-1/dev-0004" {
		t.Errorf("Topic(4) = %s", got)
	}
}

func TestLatencyHistogram(t *testing.T) {
	var h latencyHistogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	within := func(got, want time.Duration) bool {
		return got >= want && float64(got) <= float64(want)*1.011
	}
	if p := h.quantile(0.5); !within(p, 500*time.Millisecond) {
		t.Errorf("p50 %v, want 500ms within 1%%", p)
	}
	if p := h.quantile(0.99); !within(p, 990*time.Millisecond) {
		t.Errorf("p99 %v, want 990ms within 1%%", p)
	}
	if h.quantile(1) != time.Second || h.max != time.Second {
		t.Errorf("max %v", h.max)
	}
	var empty latencyHistogram
	if empty.quantile(0.5) != 0 {
		t.Error("empty histogram must report 0")
	}
}

func TestPacer(t *testing.T) {
	ctx := t.Context()
	if n, err := newPacer(0, time.Now()).take(ctx, 64); n != 64 || err != nil {
		t.Errorf("unlimited pacer gave %d, %v", n, err)
	}

	start := time.Now()
	p := newPacer(2000, start)
	taken := 0
	for taken < 200 {
		n, err := p.take(ctx, 64)
		if err != nil {
			t.Fatal(err)
		}
		taken += n
	}
	if el := time.Since(start); el < 95*time.Millisecond {
		t.Errorf("200 tokens at 2000/s in %v, want >= ~100ms", el)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := newPacer(1, time.Now()).take(cctx, 1); err == nil {
		t.Error("take after cancel must fail")
	}
	// After a long stall only one burst is caught up.
	p = newPacer(1000, time.Now().Add(-10*time.Second))
	if n, _ := p.take(ctx, 1_000_000); n != int(p.burst) {
		t.Errorf("after a stall took %d, want one burst of %d", n, p.burst)
	}
}
