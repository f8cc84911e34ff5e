package footprint

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPodUID(t *testing.T) {
	for in, want := range map[string]string{
		// cgroupfs driver, cgroup v1 (the dev cluster).
		"12:memory:/kubepods/burstable/pod0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b/8e2c1f\n1:name=systemd:/\n": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
		// systemd driver, cgroup v2 (K3s on current distributions).
		"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8a9b_0c1d2e3f4a5b.slice/cri-containerd-8e2c.scope\n": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
		"0::/system.slice/containerd.service\n": "",
	} {
		got, ok := PodUID([]byte(in))
		if got != want || ok != (want != "") {
			t.Errorf("%q: got %q %v, want %q", in, got, ok, want)
		}
	}
}

func TestWorkload(t *testing.T) {
	for pod, want := range map[string]string{
		"processor-7d9f8b6c5d-x2x4q": "processor",
		"ingest-0":                   "ingest",
		"nats-12":                    "nats",
		"coredns-6f8b9c7d4-abcde":    "coredns",
		"standalone":                 "standalone",
	} {
		if got := Workload(pod); got != want {
			t.Errorf("%s: got %s, want %s", pod, got, want)
		}
	}
}

func TestReadPIDFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "etcd"), []byte("4242 123456\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "kubelet"), []byte("77 1\n"), 0o644)
	pids, err := ReadPIDFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 2 || pids["etcd"] != 4242 || pids["kubelet"] != 77 {
		t.Errorf("got %v", pids)
	}
	if _, err := ReadPIDFiles(t.TempDir()); err == nil || !strings.Contains(err.Error(), "dev cluster up") {
		t.Errorf("no pid files: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "kube-proxy"), []byte("x"), 0o644)
	if _, err := ReadPIDFiles(dir); err == nil {
		t.Error("a broken pid file: no error")
	}
}

// The sampler reads real processes: this test's own, under a component's
// name. A component that is gone is an error, not a zero.
func TestSnapshotReadsProcesses(t *testing.T) {
	s := &Sampler{PIDs: map[string]int{"kubelet": os.Getpid()}}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	u := snap.Usage["kubelet"]
	if u.Kind != Node || u.Procs != 1 || u.RSS <= 0 || u.PSS <= 0 || u.PSS > u.RSS {
		t.Errorf("kubelet (this process): %+v", u)
	}
	s.PIDs["etcd"] = 1 << 30 // above pid_max
	if _, err := s.Snapshot(); err == nil || !strings.Contains(err.Error(), "etcd") {
		t.Errorf("a component that is not running: %v", err)
	}
}

func TestSummarise(t *testing.T) {
	t0 := time.Unix(1000, 0)
	snaps := []Snapshot{
		{At: t0, Usage: map[string]Usage{
			"processor-7d9f8b6c5d-x2x4q": {Kind: Pod, Namespace: "edgeflow", Procs: 2, RSS: 30 << 20, PSS: 10 << 20, CPUSeconds: 5},
			"kube-apiserver":             {Kind: ControlPlane, Procs: 1, RSS: 300 << 20, PSS: 250 << 20, CPUSeconds: 100},
			"etcd":                       {Kind: ControlPlane, Procs: 1, RSS: 50 << 20, PSS: 40 << 20, CPUSeconds: 10},
		}},
		{At: t0.Add(10 * time.Second), Usage: map[string]Usage{
			"processor-7d9f8b6c5d-x2x4q": {Kind: Pod, Namespace: "edgeflow", Procs: 2, RSS: 34 << 20, PSS: 14 << 20, CPUSeconds: 6},
			"kube-apiserver":             {Kind: ControlPlane, Procs: 1, RSS: 310 << 20, PSS: 250 << 20, CPUSeconds: 103},
			"etcd":                       {Kind: ControlPlane, Procs: 1, RSS: 50 << 20, PSS: 40 << 20, CPUSeconds: 0.5}, // restarted
			Shims:                        {Kind: Node, Procs: 3, RSS: 30 << 20, PSS: 9 << 20, CPUSeconds: 1},
		}},
		{At: t0.Add(20 * time.Second), Usage: map[string]Usage{
			"etcd": {Kind: ControlPlane, Procs: 1, RSS: 50 << 20, PSS: 40 << 20, CPUSeconds: 1.5},
		}},
	}
	stats := Summarise(snaps)
	var names []string
	for _, s := range stats {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "etcd kube-apiserver containerd-shim processor-7d9f8b6c5d-x2x4q" {
		t.Fatalf("order: %s", got)
	}
	byName := map[string]Stat{}
	for _, s := range stats {
		byName[s.Name] = s
	}
	if s := byName["kube-apiserver"]; s.CPUCores != 0.3 || s.PeakRSS != 310<<20 || s.MeanPSS != 250<<20 {
		t.Errorf("kube-apiserver: %+v", s)
	}
	if s := byName["etcd"]; s.CPUCores != 0.1 {
		t.Errorf("etcd restarted: CPU from its restart, got %+v", s)
	}
	if s := byName["processor-7d9f8b6c5d-x2x4q"]; s.MeanPSS != 12<<20 || s.PeakPSS != 14<<20 || s.CPUCores != 0.1 || s.Procs != 2 {
		t.Errorf("processor: %+v", s)
	}
	p := Phase{Name: "idle", Stats: stats}
	if tot := p.Totals()[ControlPlane]; tot.MeanPSS != 290<<20 || tot.Procs != 2 {
		t.Errorf("control plane totals: %+v", tot)
	}
}

func TestReportAndFigure(t *testing.T) {
	phases := []Phase{
		{Name: "cluster only", Duration: time.Minute, Samples: 12, Stats: []Stat{
			{Name: "kube-apiserver", Kind: ControlPlane, Procs: 1, PeakRSS: 300 << 20, PeakPSS: 260 << 20, MeanPSS: 250 << 20, CPUCores: 0.05},
			{Name: "coredns-6f8b9c7d4-abcde", Kind: Pod, Namespace: "kube-system", Procs: 2, MeanPSS: 20 << 20},
		}},
		{Name: "pipeline under load", Duration: time.Minute, Samples: 12, Stats: []Stat{
			{Name: "kube-apiserver", Kind: ControlPlane, Procs: 1, MeanPSS: 280 << 20, CPUCores: 0.08},
			{Name: "processor-7d9f8b6c5d-x2x4q", Kind: Pod, Namespace: "edgeflow", Procs: 2, MeanPSS: 12 << 20},
			{Name: "processor-7d9f8b6c5d-zzzzz", Kind: Pod, Namespace: "edgeflow", Procs: 2, MeanPSS: 15 << 20},
			{Name: "<script>", Kind: Pod, Namespace: "edgeflow", Procs: 1, MeanPSS: 1 << 20},
		}},
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, phases); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### cluster only (1m0s, 12 samples)", "| kube-apiserver | control plane | 1 | 300.0 | 260.0 | 250.0 | 5.0 |", "kube-system/coredns-6f8b9c7d4-abcde", "**all of pod**"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, "memory per component", phases); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	out := svg.String()
	// One row per workload: the two processors share one, at the larger.
	if strings.Count(out, ">processor<") != 1 || !strings.Contains(out, "processor, pipeline under load: 15.0 MiB") {
		t.Errorf("processor row:\n%s", out)
	}
	if !strings.Contains(out, "kube-system/coredns") || strings.Contains(out, "<script>") {
		t.Errorf("labels not as expected or not escaped")
	}
}
