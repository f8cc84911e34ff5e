package influx

import (
	"strings"
	"testing"
	"time"
)

func TestValidateNamesEveryProblem(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:8086", Bucket: "edgeflow", Timeout: 10 * time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, c := range []struct {
		mutate func(*Config)
		want   string
	}{
		{func(c *Config) { c.URL = "ftp://x" }, "EDGEFLOW_INFLUX_URL"},
		{func(c *Config) { c.URL = "http://" }, "EDGEFLOW_INFLUX_URL"},
		{func(c *Config) { c.Bucket = "" }, "EDGEFLOW_INFLUX_BUCKET"},
		{func(c *Config) { c.Timeout = time.Millisecond }, "EDGEFLOW_INFLUX_TIMEOUT"},
	} {
		cfg := ok
		c.mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want an error naming %s", err, c.want)
		}
	}
	bad := Config{URL: "x", Bucket: "", Timeout: 0}
	err := bad.Validate()
	for _, key := range []string{"URL", "BUCKET", "TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), "EDGEFLOW_INFLUX_"+key) {
			t.Errorf("Validate() = %v, want it to name EDGEFLOW_INFLUX_%s too", err, key)
		}
	}
}

// Every window length but the coarsest is kept with the raw readings;
// without a raw bucket, everything is in the one bucket.
func TestBucketOfWindows(t *testing.T) {
	ws := []time.Duration{time.Minute, 10 * time.Second, time.Hour}
	c := Config{Bucket: "edgeflow", RawBucket: "edgeflow/raw"}
	for w, want := range map[time.Duration]string{10 * time.Second: "edgeflow/raw", time.Minute: "edgeflow/raw", time.Hour: "edgeflow"} {
		if got := c.BucketOf(w, ws); got != want {
			t.Errorf("%s windows in %s, want %s", w, got, want)
		}
	}
	if got := c.BucketOf(time.Minute, []time.Duration{time.Minute}); got != "edgeflow" {
		t.Errorf("the only window length in %s, want edgeflow", got)
	}
	c.RawBucket = ""
	if got := c.BucketOf(10*time.Second, ws); got != "edgeflow" {
		t.Errorf("no raw bucket: 10s windows in %s", got)
	}
}
