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
