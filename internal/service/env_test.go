package service_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/service"
)

type SampleConn struct {
	URL     string        `envconfig:"SAMPLE_URL" default:"nats://127.0.0.1:4222" desc:"server URL"`
	Timeout time.Duration `envconfig:"SAMPLE_TIMEOUT" default:"30s" desc:"how long to wait"`
}

// sampleConfig is shaped like a service's Config: an embedded shared block
// plus the service's own variables.
type sampleConfig struct {
	SampleConn

	Workers  int      `envconfig:"SAMPLE_WORKERS" default:"1" desc:"worker goroutines"`
	Topics   []string `envconfig:"SAMPLE_TOPICS" default:"a/+,b/#" desc:"topic filters"`
	Password string   `envconfig:"SAMPLE_PASSWORD" desc:"password (optional)"`
}

func TestPrintEnv(t *testing.T) {
	var buf bytes.Buffer
	service.PrintEnv(&buf, "sample", &sampleConfig{})
	out := buf.String()
	if strings.Contains(out, "error:") {
		t.Fatalf("PrintEnv reported an error:\n%s", out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := []string{
		"| sample variable | default | meaning |",
		"|---|---|---|",
		"| `EDGEFLOW_SAMPLE_URL` | nats://127.0.0.1:4222 | server URL |",
		"| `EDGEFLOW_SAMPLE_TIMEOUT` | 30s | how long to wait |",
		"| `EDGEFLOW_SAMPLE_WORKERS` | 1 | worker goroutines |",
		"| `EDGEFLOW_SAMPLE_TOPICS` | a/+,b/# | topic filters |",
		"| `EDGEFLOW_SAMPLE_PASSWORD` |  | password (optional) |",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("PrintEnv output:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
	}
}

func TestPrintEnvRejectsNonPointer(t *testing.T) {
	var buf bytes.Buffer
	service.PrintEnv(&buf, "sample", sampleConfig{})
	if !strings.Contains(buf.String(), "error:") {
		t.Fatalf("PrintEnv of a non-pointer did not report an error:\n%s", buf.String())
	}
}
