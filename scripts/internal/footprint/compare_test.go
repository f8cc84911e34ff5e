package footprint

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

const mi = 1 << 20

// layoutOf builds a layout with one stat per name in each of the three
// measured phases (one minute each) and one series point per phase.
func layoutOf(name string, pss map[string]int64, cpu map[string]float64) Layout {
	l := Layout{Name: name}
	for i, ph := range []string{PhaseClusterIdle, PhasePipelineIdle, PhaseLoad + " (1000 msgs/s)"} {
		p := Phase{Name: ph, Duration: time.Minute}
		pt := Point{At: time.Duration(i) * time.Minute, Phase: ph}
		for n, v := range pss {
			kind := ControlPlane
			switch n {
			case "k3s-server":
				kind = Server
			case "kubelet", "kube-proxy", "containerd", Shims:
				kind = Node
			case "coredns-1-a":
				kind = Pod
			}
			p.Stats = append(p.Stats, Stat{Name: n, Kind: kind, Procs: 1, MeanPSS: v, PeakPSS: v, PeakRSS: 2 * v, CPUCores: cpu[n]})
			switch GroupOf(n, kind) {
			case GroupKubernetes:
				pt.Kubernetes += v + mi // the peak sample is 1 MiB above the mean
			case GroupContainerd:
				pt.Containerd += v
			default:
				pt.Pods += v
			}
		}
		l.Phases = append(l.Phases, p)
		l.Series = append(l.Series, pt)
	}
	return l
}

// stock: 500 MiB of Kubernetes processes, 50 of them etcd; agent daemons
// kubelet 50 + kube-proxy 30 + containerd 40 + shims 10 = 130 MiB.
func stockLayout() Layout {
	l := layoutOf("stock", map[string]int64{
		"etcd": 50 * mi, "kube-apiserver": 250 * mi, "kube-controller-manager": 80 * mi, "kube-scheduler": 40 * mi,
		"kubelet": 50 * mi, "kube-proxy": 30 * mi, "containerd": 40 * mi, Shims: 10 * mi, "coredns-1-a": 20 * mi,
	}, map[string]float64{"kube-apiserver": 0.1, "etcd": 0.03, "kubelet": 0.05})
	l.Binary, l.BinaryBytes, l.BinaryZstdBytes = "kubeall", 135_100_000, 38_000_000
	l.NodeReady, l.ClusterReady, l.UpTotal, l.Deploy = 7*time.Second, 14*time.Second, 16*time.Second, 40*time.Second
	l.DataBytes, l.DataWhat = 70*mi, "etcd data dir"
	return l
}

func k3sLayout(server int64) Layout {
	l := layoutOf("k3s", map[string]int64{"k3s-server": server, "containerd": 40 * mi, Shims: 10 * mi, "coredns-1-a": 20 * mi},
		map[string]float64{"k3s-server": 0.12})
	l.Binary, l.BinaryBytes, l.BinaryZstdBytes = "k3s-server", 141_600_000, 40_000_000
	l.NodeReady, l.ClusterReady, l.UpTotal, l.Deploy = 4*time.Second, 22*time.Second, 25*time.Second, 45*time.Second
	l.ServerToReady = 3 * time.Second
	l.DataBytes, l.DataWhat = 5*mi, "SQLite"
	return l
}

func TestGroupOfAndPointOf(t *testing.T) {
	start := time.Unix(1000, 0)
	snap := Snapshot{At: start.Add(90 * time.Second), Usage: map[string]Usage{
		"k3s-server":  {Kind: Server, PSS: 300 * mi, RSS: 320 * mi},
		"etcd":        {Kind: ControlPlane, PSS: 40 * mi, RSS: 45 * mi},
		"kubelet":     {Kind: Node, PSS: 50 * mi, RSS: 60 * mi},
		"containerd":  {Kind: Node, PSS: 30 * mi, RSS: 35 * mi},
		Shims:         {Kind: Node, PSS: 8 * mi, RSS: 20 * mi},
		"coredns-x-y": {Kind: Pod, PSS: 20 * mi},
		"nats-0":      {Kind: Pod, PSS: 25 * mi},
	}}
	p := PointOf(snap, start, "idle")
	want := Point{At: 90 * time.Second, Phase: "idle", Kubernetes: 390 * mi, Containerd: 38 * mi, Pods: 45 * mi, KubernetesRSS: 425 * mi}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
}

func TestLayoutGroup(t *testing.T) {
	s := stockLayout()
	g := s.Group(PhasePipelineIdle, GroupKubernetes)
	// etcd, apiserver, controller-manager, scheduler, kubelet, kube-proxy.
	if g.Procs != 6 || g.MeanPSS != 500*mi || g.PeakPSS != 506*mi || g.PeakRSS != 1000*mi {
		t.Errorf("Kubernetes group: %+v", g)
	}
	if d := g.CPUSeconds - 60*(0.1+0.03+0.05); d > 1e-9 || d < -1e-9 {
		t.Errorf("CPU seconds %v, want 10.8", g.CPUSeconds)
	}
	if c := s.Group(PhaseLoad, GroupContainerd); c.MeanPSS != 50*mi || c.Procs != 2 {
		t.Errorf("containerd group under load (phase found by prefix): %+v", c)
	}
	if c := s.Group("no such phase", GroupKubernetes); c != (GroupStat{}) {
		t.Errorf("missing phase: %+v", c)
	}
}

func TestHalfTheMemory(t *testing.T) {
	for _, tc := range []struct {
		server int64
		want   string
	}{
		{240 * mi, Holds},      // 48 %
		{270 * mi, HoldsAbout}, // 54 %
		// PSS 300 of 500 (60 %); summed RSS 600 of 1000: also 60 %.
		{300 * mi, DoesNotHold + ": 60 % of the stock layout's memory at most, not 50 %"},
	} {
		c := HalfTheMemory(stockLayout(), k3sLayout(tc.server))
		if c.Verdict != tc.want {
			t.Errorf("k3s-server %d MiB: verdict %q, want %q", tc.server/mi, c.Verdict, tc.want)
		}
	}
	c := HalfTheMemory(stockLayout(), k3sLayout(300*mi))
	for _, want := range []string{"pipeline idle: 300 MiB vs 500 MiB (60 %)", "With containerd and its shims (pipeline idle): 350 MiB vs 550 MiB (64 %)",
		"Summed peak RSS (pipeline idle): 600 MiB vs 1000 MiB (60 %)"} {
		if !strings.Contains(c.Measured, want) {
			t.Errorf("measured %q lacks %q", c.Measured, want)
		}
	}
	// The stock layout's processes share one binary: RSS counts it five times.
	s := stockLayout()
	for i := range s.Phases {
		for j := range s.Phases[i].Stats {
			s.Phases[i].Stats[j].PeakRSS *= 2
		}
	}
	if c := HalfTheMemory(s, k3sLayout(300*mi)); c.Verdict != DoesNotHold+" in PSS (60 % at most); holds only in summed RSS (30 % at most), which counts the stock layout's shared binary once per process" {
		t.Errorf("RSS halves, PSS does not: %q", c.Verdict)
	}
	if c := HalfTheMemory(stockLayout(), Layout{Name: "k3s"}); c.Verdict != NotShown {
		t.Errorf("nothing measured on k3s: %q", c.Verdict)
	}
}

func TestOneProcess(t *testing.T) {
	// Saved 500 - 310 = 190 MiB; etcd 50, so one process saves at least 140 (74 %).
	c := OneProcess(stockLayout(), k3sLayout(310*mi))
	if c.Verdict != Holds || !strings.Contains(c.Measured, "pipeline idle: saved 190 MiB, etcd 50 MiB, so one process saves at least 140 MiB (74 %)") {
		t.Errorf("190 MiB saved: %+v", c)
	}
	// Saved 60, etcd 50: one process at least 10 (17 %): not shown to be the primary cause.
	c = OneProcess(stockLayout(), k3sLayout(440*mi))
	if !strings.HasPrefix(c.Verdict, NotShown) || !strings.Contains(c.Verdict, "at least 17 %") {
		t.Errorf("60 MiB saved: %+v", c)
	}
	// One phase with less saved decides.
	k := k3sLayout(310 * mi)
	for i, st := range k.Phases[2].Stats {
		if st.Name == "k3s-server" {
			k.Phases[2].Stats[i].MeanPSS = 440 * mi
		}
	}
	if c := OneProcess(stockLayout(), k); !strings.HasPrefix(c.Verdict, NotShown) {
		t.Errorf("load phase saves 60 MiB only: %+v", c)
	}
	if c := OneProcess(stockLayout(), k3sLayout(520*mi)); !strings.HasPrefix(c.Verdict, DoesNotHold) {
		t.Errorf("more memory, not less: %+v", c)
	}
}

func TestSQLite(t *testing.T) {
	c := SQLite(stockLayout(), k3sLayout(300*mi))
	if c.Verdict != Holds || !strings.Contains(c.Measured, "SQLite, 5 MiB") || !strings.Contains(c.Measured, "etcd 50 MiB PSS and 3.0 % of a core") {
		t.Errorf("%+v", c)
	}
	k := k3sLayout(300 * mi)
	k.Phases[1].Stats = append(k.Phases[1].Stats, Stat{Name: "etcd", Kind: ControlPlane})
	if c := SQLite(stockLayout(), k); !strings.HasPrefix(c.Verdict, DoesNotHold) {
		t.Errorf("an etcd in the K3s layout: %+v", c)
	}
}

func TestBinaryUnder100MB(t *testing.T) {
	k := k3sLayout(300 * mi)
	if c := BinaryUnder100MB(stockLayout(), k); !strings.HasPrefix(c.Verdict, "holds only compressed") ||
		!strings.Contains(c.Measured, "141.6 MB stripped, 40.0 MB compressed") {
		t.Errorf("141.6 MB, 40 MB compressed: %+v", c)
	}
	k.BinaryBytes = 99_900_000
	if c := BinaryUnder100MB(stockLayout(), k); c.Verdict != Holds {
		t.Errorf("99.9 MB: %q", c.Verdict)
	}
	k.BinaryBytes, k.BinaryZstdBytes = 150e6, 100e6
	if c := BinaryUnder100MB(stockLayout(), k); c.Verdict != DoesNotHold {
		t.Errorf("150 MB, 100 MB compressed: %q", c.Verdict)
	}
}

func TestInstallUnder30s(t *testing.T) {
	k := k3sLayout(300 * mi)
	if c := InstallUnder30s(stockLayout(), k); c.Verdict != Holds || !strings.Contains(c.Measured, "node Ready 3.0 s after k3s-server started, 4.0 s after up.sh began") {
		t.Errorf("%+v", c)
	}
	k.UpTotal = 40 * time.Second
	if c := InstallUnder30s(stockLayout(), k); !strings.HasPrefix(c.Verdict, "holds to a Ready node") {
		t.Errorf("up.sh 40 s: %q", c.Verdict)
	}
	k.NodeReady = 31 * time.Second
	if c := InstallUnder30s(stockLayout(), k); c.Verdict != DoesNotHold {
		t.Errorf("31 s: %q", c.Verdict)
	}
}

func TestNode512MB(t *testing.T) {
	// Agent: 50 + 30 + 40 + 10 = 130 MiB. Server: 300+1 + 50 + 20 = 371 MiB.
	c := Node512MB(stockLayout(), k3sLayout(300*mi))
	if !strings.HasPrefix(c.Verdict, Holds+" for an agent and even") || !strings.Contains(c.Measured, "130 MiB PSS, leaving 382 MiB") ||
		!strings.Contains(c.Measured, "peak: 371 MiB alone, 371 MiB with the pipeline") {
		t.Errorf("%+v", c)
	}
	if c := Node512MB(stockLayout(), k3sLayout(500*mi)); c.Verdict != Holds+" for an agent; not for a server (K3s asks 2 GB)" {
		t.Errorf("571 MiB server: %q", c.Verdict)
	}
}

func TestParseUpTimes(t *testing.T) {
	stderr := "[devcluster] kube-apiserver ready after 2.1s\n[devcluster] node Ready after 6.8s\n" +
		"[devcluster] cluster and DNS ready: 21.4s (total with checks and build: 23.0s)\n"
	n, c := ParseUpTimes(stderr)
	if n != 6800*time.Millisecond || c != 21400*time.Millisecond {
		t.Errorf("got %v %v", n, c)
	}
	if n, c := ParseUpTimes("nothing"); n != 0 || c != 0 {
		t.Errorf("no lines: %v %v", n, c)
	}
}

func TestComparisonTableAndFigure(t *testing.T) {
	var b bytes.Buffer
	if err := WriteComparison(&b, stockLayout(), k3sLayout(300*mi)); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| server binary (stripped) | kubeall 135.1 MB | k3s-server 141.6 MB | 1.05× |",
		"| Kubernetes processes (besides containerd) | 6 | 1 |  |",
		"| pipeline idle: Kubernetes PSS, mean (peak) | 500 MiB (506 MiB) | 300 MiB (301 MiB) | 0.60× |",
		"| pipeline idle: Kubernetes CPU seconds (% of a core) | 10.8 s (18.0 %) | 7.2 s (12.0 %) | 0.67× |",
		"| up.sh from a wiped state, binaries present: node Ready | 7.0 s | 4.0 s | 0.57× |",
		"| etcd | stock | 50 / 3.0 | 50 / 3.0 | 50 / 3.0 |",
		"| k3s-server | k3s | 300 / 12.0 | 300 / 12.0 | 300 / 12.0 |",
		`| "half the memory" | k3s-io/k3s README |`,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("comparison lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, " | **"); n != 6 {
		t.Errorf("%d claim rows with a verdict, want 6:\n%s", n, md)
	}
	// Per process, in the order of Components: k3s-server, etcd, kube-apiserver, ...
	if i, j := strings.Index(md, "| etcd | stock"), strings.Index(md, "| kube-apiserver | stock"); i < 0 || j < i {
		t.Errorf("etcd not listed before kube-apiserver:\n%s", md)
	}
	var svg bytes.Buffer
	if err := WriteSeriesSVG(&svg, "PSS over time", []Layout{stockLayout(), k3sLayout(300 * mi)}); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	out := svg.String()
	if n := strings.Count(out, "<polyline"); n != 4 {
		t.Errorf("%d lines, want 4 (Kubernetes and containerd of each layout)", n)
	}
	// The stock layout's Kubernetes line: 501 MiB at 0 s; y axis up to 600 (grid step 100).
	if !strings.Contains(out, `>600</text>`) || !strings.Contains(out, "K3s layout: k3s-server") {
		t.Errorf("axis or legend missing:\n%s", out)
	}
}
