package main

import (
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/scripts/internal/footprint"
)

// The report says where the numbers come from, every layout and phase, the
// side-by-side comparison when both layouts ran, and each tour step with its
// command kept whole inside a Markdown table cell.
func TestReportMarkdown(t *testing.T) {
	etcd := footprint.Stat{Name: "etcd", Kind: footprint.ControlPlane, Procs: 1, PeakRSS: 50 << 20, PeakPSS: 49 << 20, MeanPSS: 49 << 20, CPUCores: 0.026}
	server := footprint.Stat{Name: "k3s-server", Kind: footprint.Server, Procs: 1, PeakRSS: 300 << 20, PeakPSS: 290 << 20, MeanPSS: 280 << 20, CPUCores: 0.1}
	rep := &Report{
		Started: time.Date(2026, 11, 26, 2, 34, 0, 0, time.UTC),
		Machine: Machine{CPUs: 2, CPUModel: "Xeon", MemTotal: "24 GB", Kernel: "6.18", Kubernetes: "v1.34.4"},
		Layouts: []*LayoutReport{
			{Layout: footprint.Layout{Name: "stock", Deploy: 32 * time.Second, NodeReady: 7100 * time.Millisecond, ServerToReady: 6 * time.Second,
				Phases: []footprint.Phase{{Name: footprint.PhasePipelineIdle, Duration: time.Minute, Samples: 31, Stats: []footprint.Stat{etcd}}}},
				NodeIP: "172.30.250.2", Load: LoadResult{Rate: 1000, Devices: 100, Achieved: 999.4, Acked: 89998},
				Tour: []ManageStep{
					{Name: "node loss", Command: "kill -9 $(cut -d' ' -f1 run/pids/kubelet) | true", Took: 56500 * time.Millisecond, Observed: "Ready 56.5 s after"},
					{Name: "drain", Command: "kubectl drain x", Took: time.Minute, Observed: "gave up", Err: "not all Ready"},
				},
				Problems: []string{"pipeline idle: kubelet (pid 7) is not running"}},
			{Layout: footprint.Layout{Name: "k3s", Deploy: 40 * time.Second,
				Phases: []footprint.Phase{{Name: footprint.PhasePipelineIdle, Duration: time.Minute, Samples: 31, Stats: []footprint.Stat{server}}}},
				NodeIP: "172.30.251.2"},
		},
	}
	var b strings.Builder
	rep.writeMarkdown(&b)
	md := b.String()
	for _, want := range []string{
		"Machine: 2 CPUs (Xeon), 24 GB, Linux 6.18. Kubernetes v1.34.4",
		"## Side by side",
		"| task deploy OVERLAY=devcluster, to every pod ready | 32.0 s | 40.0 s | 1.25× |",
		"## stock layout: etcd and five component processes",
		"node IP 172.30.250.2. up.sh from a wiped state: node Ready 6s after the start of etcd, after 7.1s",
		"task deploy took 32s. Load phase: 1000 msgs/s asked of 100 devices, 999 achieved, 89998 acknowledged, 0 failed.",
		"### pipeline idle (1m0s, 31 samples)",
		"| etcd | control plane | 1 | 50.0 | 49.0 | 49.0 | 2.6 |",
		"| k3s-server | server (control plane and node) | 1 | 300.0 | 290.0 | 280.0 | 10.0 |",
		"| node loss | `kill -9 $(cut -d' ' -f1 run/pids/kubelet) \\| true` | 56.5s | Ready 56.5 s after |",
		"| drain | `kubectl drain x` | 1m0s | gave up **error:** not all Ready |",
		"### Problems\n\n- pipeline idle: kubelet (pid 7) is not running",
		"## K3s layout: one k3s-server process",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
