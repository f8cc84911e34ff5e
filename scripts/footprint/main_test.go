package main

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/footprint"
)

// The report says where the numbers come from, every phase, and each tour
// step with its command kept whole inside a Markdown table cell.
func TestReportMarkdown(t *testing.T) {
	rep := &Report{
		Started: time.Date(2026, 11, 26, 2, 34, 0, 0, time.UTC),
		Machine: Machine{CPUs: 2, CPUModel: "Xeon", MemTotal: "24 GB", Kernel: "6.18", Kubernetes: "v1.34.4"},
		Deploy:  32 * time.Second,
		Load:    LoadResult{Rate: 1000, Devices: 100, Achieved: 999.4, Acked: 89998},
		Phases: []footprint.Phase{{Name: "pipeline idle", Duration: time.Minute, Samples: 31, Stats: []footprint.Stat{
			{Name: "etcd", Kind: footprint.ControlPlane, Procs: 1, PeakRSS: 50 << 20, PeakPSS: 49 << 20, MeanPSS: 49 << 20, CPUCores: 0.026},
		}}},
		Tour: []ManageStep{
			{Name: "node loss", Command: "kill -9 $(cut -d' ' -f1 run/pids/kubelet) | true", Took: 56500 * time.Millisecond, Observed: "Ready 56.5 s after"},
			{Name: "drain", Command: "kubectl drain x", Took: time.Minute, Observed: "gave up", Err: "not all Ready"},
		},
		Problems: []string{"pipeline idle: kubelet (pid 7) is not running"},
	}
	var b strings.Builder
	rep.writeMarkdown(&b)
	md := b.String()
	for _, want := range []string{
		"Machine: 2 CPUs (Xeon), 24 GB, Linux 6.18. Kubernetes v1.34.4",
		"task deploy took 32s. Load phase: 1000 msgs/s asked of 100 devices, 999 achieved, 89998 acknowledged, 0 failed.",
		"### pipeline idle (1m0s, 31 samples)",
		"| etcd | control plane | 1 | 50.0 | 49.0 | 49.0 | 2.6 |",
		"| node loss | `kill -9 $(cut -d' ' -f1 run/pids/kubelet) \\| true` | 56.5s | Ready 56.5 s after |",
		"| drain | `kubectl drain x` | 1m0s | gave up **error:** not all Ready |",
		"## Problems\n\n- pipeline idle: kubelet (pid 7) is not running",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
