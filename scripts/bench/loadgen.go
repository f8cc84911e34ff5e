package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// LoadReport is the part of the load generator's -report the bench reads
// (scripts/loadgen/README.md describes it all).
type LoadReport struct {
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	PublishSeconds float64 `json:"publish_seconds"`
	AchievedRate   float64 `json:"achieved_rate"`
	Totals         struct {
		Attempted int64 `json:"attempted"`
		Acked     int64 `json:"acked"`
		Failed    int64 `json:"failed"`
	} `json:"totals"`
	Latency struct {
		P50Ms float64 `json:"p50_ms"`
		P99Ms float64 `json:"p99_ms"`
		MaxMs float64 `json:"max_ms"`
	} `json:"latency"`
	ConnectionLosses int64 `json:"connection_losses"`

	// CPUSeconds is the load generator process's own CPU time (from
	// wait4), not part of its report. (wait4's peak RSS would be no use: a
	// forked child's counts the parent's pages until exec.)
	CPUSeconds float64 `json:"-"`
}

// Load is one run of the load generator.
type Load struct {
	Broker     string
	Devices    int
	Publishers int
	Rate       float64 // 0 = as fast as PUBACKs return
	Count      int64
	Duration   string // e.g. "60s"; empty = none
	SeqStart   uint64
	Prefix     string // MQTT client-id prefix, distinct per run
}

// args are the load generator's flags for l, writing its report to report.
func (l Load) args(report string) []string {
	a := []string{"-broker", l.Broker, "-devices", strconv.Itoa(l.Devices), "-publishers", strconv.Itoa(l.Publishers),
		"-rate", strconv.FormatFloat(l.Rate, 'f', -1, 64), "-qos", "1", "-client-prefix", l.Prefix,
		"-seq-start", strconv.FormatUint(l.SeqStart, 10), "-report", report}
	if l.Count > 0 {
		a = append(a, "-count", strconv.FormatInt(l.Count, 10))
	}
	if l.Duration != "" {
		a = append(a, "-duration", l.Duration)
	}
	return a
}

// runLoadgen runs the built load generator to completion. Its exit status 1
// (some messages not acknowledged) is not an error here: the report says
// what was lost, and the step's verdict judges it.
func runLoadgen(ctx context.Context, bin, dir string, l Load) (LoadReport, error) {
	report := filepath.Join(dir, l.Prefix+".json")
	cmd := exec.CommandContext(ctx, bin, l.args(report)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return LoadReport{}, fmt.Errorf("loadgen %v: %w\n%s", l.args(report), err, out)
	}
	_ = os.WriteFile(filepath.Join(dir, l.Prefix+".txt"), out, 0o644)
	data, rerr := os.ReadFile(report)
	if rerr != nil {
		return LoadReport{}, fmt.Errorf("loadgen report: %w (loadgen: %v)\n%s", rerr, err, out)
	}
	var r LoadReport
	if err := json.Unmarshal(data, &r); err != nil {
		return LoadReport{}, fmt.Errorf("loadgen report %s: %w", report, err)
	}
	if ps := cmd.ProcessState; ps != nil {
		r.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	return r, nil
}
