package footprint

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The phases task footprint measures on each layout, by name.
const (
	PhaseClusterIdle  = "cluster only, idle"
	PhaseDeploy       = "task deploy"
	PhasePipelineIdle = "pipeline idle"
	PhaseLoad         = "pipeline under load"
)

// Groups the layouts are compared by: what runs Kubernetes (the stock
// layout's etcd and five component processes, or the K3s layout's one
// k3s-server process), containerd with its shims (the same daemon beside
// either), and the pods.
const (
	GroupKubernetes = "Kubernetes"
	GroupContainerd = "containerd"
	GroupPods       = "pods"
)

// GroupOf is the group of a component or pod, by its name and kind.
func GroupOf(name, kind string) string {
	switch {
	case kind == Pod:
		return GroupPods
	case name == "containerd" || name == Shims:
		return GroupContainerd
	}
	return GroupKubernetes
}

// Point is one sample of a layout over time: the PSS of each group.
type Point struct {
	At            time.Duration `json:"at"` // since the layout's up.sh started
	Phase         string        `json:"phase"`
	Kubernetes    int64         `json:"kubernetes_pss"`
	Containerd    int64         `json:"containerd_pss"`
	Pods          int64         `json:"pods_pss"`
	KubernetesRSS int64         `json:"kubernetes_rss"`
}

// PointOf sums a snapshot by group.
func PointOf(s Snapshot, start time.Time, phase string) Point {
	p := Point{At: s.At.Sub(start), Phase: phase}
	for name, u := range s.Usage {
		switch GroupOf(name, u.Kind) {
		case GroupKubernetes:
			p.Kubernetes += u.PSS
			p.KubernetesRSS += u.RSS
		case GroupContainerd:
			p.Containerd += u.PSS
		default:
			p.Pods += u.PSS
		}
	}
	return p
}

// Layout is what task footprint measured on one layout of the dev cluster.
type Layout struct {
	Name            string        `json:"name"`   // stock, k3s
	Binary          string        `json:"binary"` // kubeall, k3s-server
	BinaryBytes     int64         `json:"binary_bytes"`
	BinaryZstdBytes int64         `json:"binary_zstd_bytes"` // zstd -16 --long=25, as K3s packs its binaries
	DataBytes       int64         `json:"data_bytes"`        // etcd's data dir, or kine's SQLite file with its WAL
	DataWhat        string        `json:"data_what"`
	UpTotal         time.Duration `json:"up_total"`        // up.sh from a wiped state, wall clock
	NodeReady       time.Duration `json:"node_ready"`      // up.sh's own count: start of the daemons to node Ready
	ClusterReady    time.Duration `json:"cluster_ready"`   // ... to cluster DNS (and the K3s layout's provisioner) ready
	ServerToReady   time.Duration `json:"server_to_ready"` // from the start of the first Kubernetes process (etcd, k3s-server) to the node's Ready transition (±1 s)
	Deploy          time.Duration `json:"deploy"`          // task deploy, to every pod ready
	Phases          []Phase       `json:"phases"`
	Series          []Point       `json:"series"`
	TourOK          int           `json:"tour_ok"`
	TourSteps       int           `json:"tour_steps"`
}

// Phase returns the layout's phase whose name starts with name.
func (l Layout) Phase(name string) (Phase, bool) {
	for _, p := range l.Phases {
		if strings.HasPrefix(p.Name, name) {
			return p, true
		}
	}
	return Phase{}, false
}

// GroupStat is a group's figures over a phase.
type GroupStat struct {
	Procs      int     `json:"procs"`
	MeanPSS    int64   `json:"mean_pss"`    // sum of the members' mean PSS
	PeakPSS    int64   `json:"peak_pss"`    // the highest sum in one sample (from the series)
	PeakRSS    int64   `json:"peak_rss"`    // sum of the members' peak RSS (counts shared pages once per process)
	CPUSeconds float64 `json:"cpu_seconds"` // CPU time the members used during the phase
}

// Group sums a phase's stats of one group; the peak PSS comes from the
// series, where the samples of the phase are summed one by one.
func (l Layout) Group(phase, group string) GroupStat {
	var g GroupStat
	p, ok := l.Phase(phase)
	if !ok {
		return g
	}
	for _, s := range p.Stats {
		if GroupOf(s.Name, s.Kind) != group {
			continue
		}
		g.Procs += s.Procs
		g.MeanPSS += s.MeanPSS
		g.PeakRSS += s.PeakRSS
		g.CPUSeconds += s.CPUCores * p.Duration.Seconds()
	}
	for _, pt := range l.Series {
		if pt.Phase != p.Name {
			continue
		}
		v := map[string]int64{GroupKubernetes: pt.Kubernetes, GroupContainerd: pt.Containerd, GroupPods: pt.Pods}[group]
		g.PeakPSS = max(g.PeakPSS, v)
	}
	return g
}

// Stat returns a component's stat in a phase.
func (l Layout) Stat(phase, name string) (Stat, bool) {
	p, ok := l.Phase(phase)
	if !ok {
		return Stat{}, false
	}
	for _, s := range p.Stats {
		if s.Name == name {
			return s, true
		}
	}
	return Stat{}, false
}

// Row is one line of the side-by-side table.
type Row struct{ What, Stock, K3s, Ratio string }

func mibs(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
func mbs(b int64) string  { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
func secs(d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// ratio is k3s/stock as "0.62×", or "" when stock is zero.
func ratio(stock, k3s float64) string {
	if stock <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", k3s/stock)
}

// Compare is the side-by-side table of the two layouts.
func Compare(stock, k3s Layout) []Row {
	rows := []Row{
		{"server binary (stripped)", fmt.Sprintf("%s %s", stock.Binary, mbs(stock.BinaryBytes)), fmt.Sprintf("%s %s", k3s.Binary, mbs(k3s.BinaryBytes)), ratio(float64(stock.BinaryBytes), float64(k3s.BinaryBytes))},
		{"the same, zstd -16 --long=25 (as K3s packs its binaries)", mbs(stock.BinaryZstdBytes), mbs(k3s.BinaryZstdBytes), ratio(float64(stock.BinaryZstdBytes), float64(k3s.BinaryZstdBytes))},
		{"Kubernetes processes (besides containerd)", fmt.Sprint(stock.Group(PhaseClusterIdle, GroupKubernetes).Procs), fmt.Sprint(k3s.Group(PhaseClusterIdle, GroupKubernetes).Procs), ""},
		{"up.sh from a wiped state, binaries present: node Ready", secs(stock.NodeReady), secs(k3s.NodeReady), ratio(stock.NodeReady.Seconds(), k3s.NodeReady.Seconds())},
		{"start of etcd / k3s-server to the node's Ready transition (±1 s)", secs(stock.ServerToReady), secs(k3s.ServerToReady), ratio(stock.ServerToReady.Seconds(), k3s.ServerToReady.Seconds())},
		{"up.sh: cluster DNS (and K3s layout's local-path) ready", secs(stock.ClusterReady), secs(k3s.ClusterReady), ratio(stock.ClusterReady.Seconds(), k3s.ClusterReady.Seconds())},
		{"up.sh wall clock, checks included", secs(stock.UpTotal), secs(k3s.UpTotal), ratio(stock.UpTotal.Seconds(), k3s.UpTotal.Seconds())},
		{"task deploy OVERLAY=devcluster, to every pod ready", secs(stock.Deploy), secs(k3s.Deploy), ratio(stock.Deploy.Seconds(), k3s.Deploy.Seconds())},
	}
	for _, ph := range []string{PhaseClusterIdle, PhasePipelineIdle, PhaseLoad} {
		sp, _ := stock.Phase(ph)
		kp, _ := k3s.Phase(ph)
		sg, kg := stock.Group(ph, GroupKubernetes), k3s.Group(ph, GroupKubernetes)
		sc, kc := stock.Group(ph, GroupContainerd), k3s.Group(ph, GroupContainerd)
		sq, kq := stock.Group(ph, GroupPods), k3s.Group(ph, GroupPods)
		rows = append(rows,
			Row{ph + ": Kubernetes PSS, mean (peak)", fmt.Sprintf("%s (%s)", mibs(sg.MeanPSS), mibs(sg.PeakPSS)), fmt.Sprintf("%s (%s)", mibs(kg.MeanPSS), mibs(kg.PeakPSS)), ratio(float64(sg.MeanPSS), float64(kg.MeanPSS))},
			Row{ph + ": Kubernetes RSS, peak summed over processes", mibs(sg.PeakRSS), mibs(kg.PeakRSS), ratio(float64(sg.PeakRSS), float64(kg.PeakRSS))},
			Row{ph + ": Kubernetes CPU seconds (% of a core)", cpu(sg.CPUSeconds, sp.Duration), cpu(kg.CPUSeconds, kp.Duration), ratio(sg.CPUSeconds/max(sp.Duration.Seconds(), 1e-9), kg.CPUSeconds/max(kp.Duration.Seconds(), 1e-9))},
			Row{ph + ": containerd + shims PSS, mean", mibs(sc.MeanPSS), mibs(kc.MeanPSS), ratio(float64(sc.MeanPSS), float64(kc.MeanPSS))},
			Row{ph + ": all pods PSS, mean", mibs(sq.MeanPSS), mibs(kq.MeanPSS), ratio(float64(sq.MeanPSS), float64(kq.MeanPSS))},
		)
	}
	rows = append(rows,
		Row{"cluster state on disk at the end", fmt.Sprintf("%s (%s)", mibs(stock.DataBytes), stock.DataWhat), fmt.Sprintf("%s (%s)", mibs(k3s.DataBytes), k3s.DataWhat), ratio(float64(stock.DataBytes), float64(k3s.DataBytes))},
		Row{"management tour: steps that worked", fmt.Sprintf("%d of %d", stock.TourOK, stock.TourSteps), fmt.Sprintf("%d of %d", k3s.TourOK, k3s.TourSteps), ""},
	)
	return rows
}

func cpu(s float64, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f s (%.1f %%)", s, 100*s/d.Seconds())
}

// Claim is one of K3s's published claims with what was measured and the verdict.
type Claim struct {
	Claim    string `json:"claim"`
	Source   string `json:"source"`
	Measured string `json:"measured"`
	Verdict  string `json:"verdict"`
}

// Verdicts.
const (
	Holds       = "holds"
	HoldsAbout  = "holds, roughly"
	DoesNotHold = "does not hold"
	NotShown    = "not shown"
)

const readme = "k3s-io/k3s README"

// HalfTheMemory compares the Kubernetes processes' mean PSS (datastore
// included) in each measured phase: it holds where K3s's is at most half
// the stock one, roughly where at most 55 %. Summed RSS, which counts the
// pages of a binary shared by several processes once per process (what
// adding up ps or top figures gives), is reported beside it: it may halve
// where PSS does not.
func HalfTheMemory(stock, k3s Layout) Claim {
	c := Claim{Claim: `"half the memory"`, Source: readme}
	var parts []string
	worst, worstRSS := 0.0, 0.0
	for _, ph := range []string{PhaseClusterIdle, PhasePipelineIdle, PhaseLoad} {
		sg, kg := stock.Group(ph, GroupKubernetes), k3s.Group(ph, GroupKubernetes)
		if sg.MeanPSS <= 0 || kg.MeanPSS <= 0 {
			c.Measured, c.Verdict = "phase "+ph+" not measured on both layouts", NotShown
			return c
		}
		r := float64(kg.MeanPSS) / float64(sg.MeanPSS)
		worst = max(worst, r)
		if sg.PeakRSS > 0 {
			worstRSS = max(worstRSS, float64(kg.PeakRSS)/float64(sg.PeakRSS))
		}
		parts = append(parts, fmt.Sprintf("%s: %s vs %s (%.0f %%)", ph, mibs(kg.MeanPSS), mibs(sg.MeanPSS), 100*r))
	}
	sc, kc := stock.Group(PhasePipelineIdle, GroupContainerd).MeanPSS, k3s.Group(PhasePipelineIdle, GroupContainerd).MeanPSS
	sg, kg := stock.Group(PhasePipelineIdle, GroupKubernetes), k3s.Group(PhasePipelineIdle, GroupKubernetes)
	c.Measured = "Kubernetes processes' mean PSS, K3s layout vs stock: " + strings.Join(parts, "; ") +
		fmt.Sprintf(". With containerd and its shims (pipeline idle): %s vs %s (%.0f %%). Summed peak RSS (pipeline idle): %s vs %s (%.0f %%)",
			mibs(kg.MeanPSS+kc), mibs(sg.MeanPSS+sc), 100*float64(kg.MeanPSS+kc)/float64(sg.MeanPSS+sc),
			mibs(kg.PeakRSS), mibs(sg.PeakRSS), 100*float64(kg.PeakRSS)/float64(max(sg.PeakRSS, 1)))
	switch {
	case worst <= 0.5:
		c.Verdict = Holds
	case worst <= 0.55:
		c.Verdict = HoldsAbout
	case worstRSS > 0 && worstRSS <= 0.55:
		c.Verdict = fmt.Sprintf("%s in PSS (%.0f %% at most); holds only in summed RSS (%.0f %% at most), which counts the stock layout's shared binary once per process",
			DoesNotHold, 100*worst, 100*worstRSS)
	default:
		c.Verdict = fmt.Sprintf("%s: %.0f %% of the stock layout's memory at most, not 50 %%", DoesNotHold, 100*worst)
	}
	return c
}

// OneProcess splits the memory saved in each phase between its two causes.
// The datastore's share cannot exceed etcd's PSS (kine inside k3s-server
// costs at least nothing), so the rest, at least S - etcd of the saving S,
// comes from running the components in one process. It holds where that
// bound is at least half the saving in every phase.
func OneProcess(stock, k3s Layout) Claim {
	c := Claim{Claim: `"memory footprint reduced primarily by running many components inside of a single process"`, Source: readme}
	var parts []string
	least, any := 1.0, false
	for _, ph := range []string{PhaseClusterIdle, PhasePipelineIdle, PhaseLoad} {
		s, k := stock.Group(ph, GroupKubernetes).MeanPSS, k3s.Group(ph, GroupKubernetes).MeanPSS
		etcd, ok := stock.Stat(ph, "etcd")
		if s <= 0 || k <= 0 || !ok {
			continue
		}
		any = true
		saved := s - k
		if saved <= 0 {
			parts = append(parts, fmt.Sprintf("%s: nothing saved (%s vs %s)", ph, mibs(k), mibs(s)))
			least = -1
			continue
		}
		oneProc := max(saved-etcd.MeanPSS, 0)
		share := float64(oneProc) / float64(saved)
		least = min(least, share)
		parts = append(parts, fmt.Sprintf("%s: saved %s, etcd %s, so one process saves at least %s (%.0f %%)",
			ph, mibs(saved), mibs(etcd.MeanPSS), mibs(oneProc), 100*share))
	}
	if !any {
		c.Measured, c.Verdict = "not measured on both layouts", NotShown
		return c
	}
	c.Measured = "kine/SQLite instead of etcd saves at most what etcd took; the rest of the saving comes from one process instead of five. " +
		strings.Join(parts, "; ")
	switch {
	case least < 0:
		c.Verdict = DoesNotHold + ": no memory saved in a phase"
	case least >= 0.5:
		c.Verdict = Holds
	default:
		c.Verdict = fmt.Sprintf("%s: the bound leaves one process at least %.0f %% of the saving in the least favourable phase", NotShown, 100*least)
	}
	return c
}

// SQLite checks that the K3s layout keeps its state in SQLite with no etcd
// process, and reports what etcd costs in the stock layout.
func SQLite(stock, k3s Layout) Claim {
	c := Claim{Claim: `"SQLite instead of etcd" (kine, the default datastore of a single server)`, Source: "docs.k3s.io/datastore"}
	_, etcdInK3s := k3s.Stat(PhasePipelineIdle, "etcd")
	etcd, ok := stock.Stat(PhasePipelineIdle, "etcd")
	load, _ := stock.Stat(PhaseLoad, "etcd")
	c.Measured = fmt.Sprintf("K3s layout: state in %s, %s at the end, no etcd process. Stock: %s; etcd %s PSS and %.1f %% of a core (pipeline idle), %.1f %% under load",
		k3s.DataWhat, mibs(k3s.DataBytes), fmt.Sprintf("%s %s", stock.DataWhat, mibs(stock.DataBytes)), mibs(etcd.MeanPSS), 100*etcd.CPUCores, 100*load.CPUCores)
	switch {
	case k3s.DataBytes > 0 && !etcdInK3s && ok:
		c.Verdict = Holds
	case etcdInK3s:
		c.Verdict = DoesNotHold + ": an etcd process runs in the K3s layout"
	default:
		c.Verdict = NotShown
	}
	return c
}

// BinaryUnder100MB: K3s's README says "all in a binary less than 100 MB".
func BinaryUnder100MB(stock, k3s Layout) Claim {
	c := Claim{Claim: `"all in a binary less than 100 MB"`, Source: readme}
	c.Measured = fmt.Sprintf("%s (kine, the five components, kubectl, the deploy controller): %s stripped, %s compressed with zstd -16 --long=25 as K3s packs its binaries; stock %s: %s, %s compressed",
		k3s.Binary, mbs(k3s.BinaryBytes), mbs(k3s.BinaryZstdBytes), stock.Binary, mbs(stock.BinaryBytes), mbs(stock.BinaryZstdBytes))
	switch {
	case k3s.BinaryBytes <= 0:
		c.Verdict = NotShown
	case k3s.BinaryBytes < 100e6:
		c.Verdict = Holds
	case k3s.BinaryZstdBytes > 0 && k3s.BinaryZstdBytes < 100e6:
		c.Verdict = "holds only compressed, as K3s ships it (the executable itself is over 100 MB)"
	default:
		c.Verdict = DoesNotHold
	}
	return c
}

// InstallUnder30s: from the start of the daemons to a Ready node, the
// binaries present (what K3s's install script does once it has the binary).
func InstallUnder30s(stock, k3s Layout) Claim {
	c := Claim{Claim: "install in under 30 s", Source: "said of K3s; no K3s page gives a time (docs.k3s.io/quick-start)"}
	c.Measured = fmt.Sprintf("K3s layout, from a wiped state with the binaries present: node Ready %s after k3s-server started, %s after up.sh began starting daemons (containerd and its image imports first), cluster DNS and local-path ready at %s, up.sh %s in all; stock: %s after etcd started, %s, %s, %s",
		secs(k3s.ServerToReady), secs(k3s.NodeReady), secs(k3s.ClusterReady), secs(k3s.UpTotal), secs(stock.ServerToReady), secs(stock.NodeReady), secs(stock.ClusterReady), secs(stock.UpTotal))
	switch {
	case k3s.NodeReady <= 0:
		c.Verdict = NotShown
	case k3s.NodeReady < 30*time.Second && k3s.UpTotal < 30*time.Second:
		c.Verdict = Holds
	case k3s.NodeReady < 30*time.Second:
		c.Verdict = "holds to a Ready node; up.sh with its checks took longer"
	default:
		c.Verdict = DoesNotHold
	}
	return c
}

// Node512MB: K3s's minimum for an agent is 512 MB. An agent runs kubelet,
// kube-proxy and containerd: measured apart in the stock layout only (the
// K3s layout's kubelet and kube-proxy live in k3s-server with the control
// plane). The K3s layout gives the whole single-node server.
func Node512MB(stock, k3s Layout) Claim {
	c := Claim{Claim: `"512 MB RAM minimum" for a node (agent); 2 GB for a server`, Source: "docs.k3s.io/installation/requirements"}
	const limit = 512 << 20
	var agent int64
	for _, n := range []string{"kubelet", "kube-proxy", "containerd", Shims} {
		s, _ := stock.Stat(PhaseClusterIdle, n)
		agent += s.MeanPSS
	}
	var serverIdle, serverLoad int64
	for _, pt := range k3s.Series {
		sum := pt.Kubernetes + pt.Containerd + pt.Pods
		switch {
		case strings.HasPrefix(pt.Phase, PhaseClusterIdle):
			serverIdle = max(serverIdle, sum)
		case strings.HasPrefix(pt.Phase, PhaseLoad):
			serverLoad = max(serverLoad, sum)
		}
	}
	if agent <= 0 || serverIdle <= 0 {
		c.Measured, c.Verdict = "cluster-only phase not measured on both layouts", NotShown
		return c
	}
	c.Measured = fmt.Sprintf("an agent's daemons (kubelet, kube-proxy, containerd and shims, stock layout, cluster only): %s PSS, leaving %s of 512 MiB for the OS and pods. "+
		"The K3s layout's whole single-node server (k3s-server, containerd, CoreDNS, local-path, metrics-server), peak: %s alone, %s with the pipeline under load",
		mibs(agent), mibs(limit-agent), mibs(serverIdle), mibs(serverLoad))
	switch {
	case agent < limit && serverLoad > 0 && serverLoad < limit:
		c.Verdict = Holds + " for an agent and even for this single-node server with the pipeline"
	case agent < limit && serverIdle < limit:
		c.Verdict = Holds + " for an agent; this single-node server fits alone but not with the pipeline"
	case agent < limit:
		c.Verdict = Holds + " for an agent; not for a server (K3s asks 2 GB)"
	default:
		c.Verdict = DoesNotHold
	}
	return c
}

// Claims are the seed's K3s claims, one row each.
func Claims(stock, k3s Layout) []Claim {
	return []Claim{HalfTheMemory(stock, k3s), OneProcess(stock, k3s), SQLite(stock, k3s),
		BinaryUnder100MB(stock, k3s), InstallUnder30s(stock, k3s), Node512MB(stock, k3s)}
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// WriteComparison writes the side-by-side table, each process's memory
// and CPU in both layouts, and the claims with their verdicts.
func WriteComparison(w io.Writer, stock, k3s Layout) error {
	var b strings.Builder
	b.WriteString("| | stock (etcd + 5 processes) | K3s layout (k3s-server) | K3s / stock |\n|---|--:|--:|--:|\n")
	for _, r := range Compare(stock, k3s) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(r.What), cell(r.Stock), cell(r.K3s), r.Ratio)
	}
	b.WriteString("\nPer process, mean PSS MiB / CPU % of a core:\n\n")
	phases := []string{PhaseClusterIdle, PhasePipelineIdle, PhaseLoad}
	b.WriteString("| process | layout |")
	for _, ph := range phases {
		fmt.Fprintf(&b, " %s |", ph)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("--:|", len(phases)) + "\n")
	for _, l := range []Layout{stock, k3s} {
		var names []string
		for _, ph := range phases {
			p, _ := l.Phase(ph)
			for _, s := range p.Stats {
				if GroupOf(s.Name, s.Kind) != GroupPods && !slices.Contains(names, s.Name) {
					names = append(names, s.Name)
				}
			}
		}
		slices.SortStableFunc(names, func(a, b string) int { return componentOrder(a) - componentOrder(b) })
		for _, n := range names {
			fmt.Fprintf(&b, "| %s | %s |", n, l.Name)
			for _, ph := range phases {
				if s, ok := l.Stat(ph, n); ok {
					fmt.Fprintf(&b, " %.0f / %.1f |", float64(s.MeanPSS)/(1<<20), 100*s.CPUCores)
				} else {
					b.WriteString(" |")
				}
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n| claim | source | measured | verdict |\n|---|---|---|---|\n")
	for _, c := range Claims(stock, k3s) {
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** |\n", cell(c.Claim), cell(c.Source), cell(c.Measured), cell(c.Verdict))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

var (
	upNodeReady    = regexp.MustCompile(`node Ready after ([0-9.]+)s`)
	upClusterReady = regexp.MustCompile(`cluster and DNS ready: ([0-9.]+)s`)
)

// ParseUpTimes reads up.sh's progress (stderr): the time from the start of
// the daemons (after the build check) to the node Ready and to the cluster
// ready; zero for a line that is missing.
func ParseUpTimes(stderr string) (nodeReady, clusterReady time.Duration) {
	get := func(re *regexp.Regexp) time.Duration {
		m := re.FindStringSubmatch(stderr)
		if m == nil {
			return 0
		}
		f, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0
		}
		return time.Duration(f * float64(time.Second))
	}
	return get(upNodeReady), get(upClusterReady)
}

// componentOrder is a component's place in Components (the shims after them).
func componentOrder(name string) int {
	for i, c := range Components {
		if c.Name == name {
			return i
		}
	}
	return len(Components)
}
