// Package footprint measures what a Kubernetes node costs next to what it
// runs: the memory and CPU of each cluster component (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kube-proxy, containerd
// and its shims) and of each pod, all read the same way from /proc, so the
// numbers compare. task footprint runs it on the dev cluster over the phases
// of a deployment (docs/k3s-vs-kubernetes.md); the cluster test checks it.
package footprint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/scripts/internal/procstat"
)

// Kinds of what is measured.
const (
	ControlPlane = "control plane"
	Node         = "node"
	Pod          = "pod"
	// Server is the K3s layout's one process: the datastore (kine on SQLite),
	// the control plane, kubelet and kube-proxy.
	Server = "server (control plane and node)"
)

// Components are the dev cluster's daemons (scripts/devcluster/up.sh), by
// the names of their pid files, in the order reports list them: the stock
// layout's seven, or the K3s layout's k3s-server and containerd.
var Components = []struct{ Name, Kind string }{
	{"k3s-server", Server},
	{"etcd", ControlPlane},
	{"kube-apiserver", ControlPlane},
	{"kube-controller-manager", ControlPlane},
	{"kube-scheduler", ControlPlane},
	{"kubelet", Node},
	{"kube-proxy", Node},
	{"containerd", Node},
}

// Shims is the name all containerd-shim processes are summed under: one per
// pod, outside the pods' cgroups.
const Shims = "containerd-shim"

// Usage is what one component or pod used at one moment: the sum over its
// processes.
type Usage struct {
	Kind       string  `json:"kind"`
	Namespace  string  `json:"namespace,omitempty"` // pods
	Procs      int     `json:"procs"`
	RSS        int64   `json:"rss_bytes"`
	PSS        int64   `json:"pss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"` // since each process started
}

// Snapshot is every component and pod at one moment, by name (pods by pod
// name).
type Snapshot struct {
	At    time.Time        `json:"at"`
	Usage map[string]Usage `json:"usage"`
}

// PodRef names a pod.
type PodRef struct{ Namespace, Name string }

// Sampler reads snapshots of one node from /proc. It must run as root on
// the node, in its PID namespace.
type Sampler struct {
	// PIDs are the components' processes by name.
	PIDs map[string]int
	// Pods names a pod by its UID; false for pods it does not know (yet).
	Pods func(uid string) (PodRef, bool)
	// Proc is /proc (tests point it elsewhere).
	Proc string
}

// ReadPIDFiles reads the dev cluster's pid files (run/pids/<name>: "PID
// STARTTIME") of every component that has one.
func ReadPIDFiles(dir string) (map[string]int, error) {
	pids := map[string]int{}
	for _, c := range Components {
		b, err := os.ReadFile(filepath.Join(dir, c.Name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return nil, fmt.Errorf("pid file %s is empty", filepath.Join(dir, c.Name))
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("pid file %s: %q", filepath.Join(dir, c.Name), f[0])
		}
		pids[c.Name] = pid
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no component pid files in %s: is the dev cluster up?", dir)
	}
	return pids, nil
}

// podCgroup finds the pod UID in a /proc/<pid>/cgroup: kubelet puts a pod's
// containers under .../pod<uid>/ (cgroupfs driver) or ...-pod<uid_with_underscores>.slice
// (systemd driver).
var podCgroup = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)

// PodUID returns the UID of the pod a process belongs to, from its cgroup file.
func PodUID(cgroup []byte) (string, bool) {
	m := podCgroup.FindSubmatch(cgroup)
	if m == nil {
		return "", false
	}
	return strings.ReplaceAll(string(m[1]), "_", "-"), true
}

// Snapshot reads every component, the shims and every pod's processes.
// Processes that exit while it reads are skipped.
func (s *Sampler) Snapshot() (Snapshot, error) {
	proc := s.Proc
	if proc == "" {
		proc = "/proc"
	}
	snap := Snapshot{At: time.Now(), Usage: map[string]Usage{}}
	byPID := map[int]string{}
	for name, pid := range s.PIDs {
		byPID[pid] = name
	}
	kinds := map[string]string{}
	for _, c := range Components {
		kinds[c.Name] = c.Kind
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return snap, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		key, u, ok := s.classify(proc, pid, byPID, kinds)
		if !ok {
			continue
		}
		mem, err := procstat.ReadMemory(pid)
		if err != nil {
			continue // exited
		}
		st, err := procstat.Read(pid)
		if err != nil {
			continue
		}
		acc := snap.Usage[key]
		if acc.Kind == "" {
			acc.Kind, acc.Namespace = u.Kind, u.Namespace
		}
		acc.Procs++
		acc.RSS += mem.RSSBytes
		acc.PSS += mem.PSSBytes
		acc.CPUSeconds += st.CPUSeconds
		snap.Usage[key] = acc
	}
	for name := range s.PIDs {
		if _, ok := snap.Usage[name]; !ok {
			return snap, fmt.Errorf("%s (pid %d) is not running", name, s.PIDs[name])
		}
	}
	return snap, nil
}

// classify says what a process is part of: a component, the shims, a pod,
// or nothing measured.
func (s *Sampler) classify(proc string, pid int, byPID map[int]string, kinds map[string]string) (string, Usage, bool) {
	if name, ok := byPID[pid]; ok {
		return name, Usage{Kind: kinds[name]}, true
	}
	comm, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	if err != nil {
		return "", Usage{}, false
	}
	if bytes.HasPrefix(comm, []byte(Shims)) {
		return Shims, Usage{Kind: Node}, true
	}
	cg, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", Usage{}, false
	}
	uid, ok := PodUID(cg)
	if !ok || s.Pods == nil {
		return "", Usage{}, false
	}
	ref, ok := s.Pods(uid)
	if !ok {
		return "", Usage{}, false
	}
	return ref.Name, Usage{Kind: Pod, Namespace: ref.Namespace}, true
}

// Stat is one component's or pod's figures over a phase.
type Stat struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Namespace string  `json:"namespace,omitempty"`
	Procs     int     `json:"procs"`
	PeakRSS   int64   `json:"peak_rss_bytes"`
	PeakPSS   int64   `json:"peak_pss_bytes"`
	MeanPSS   int64   `json:"mean_pss_bytes"`
	CPUCores  float64 `json:"cpu_cores"` // CPU seconds per second over the phase
}

// Summarise turns a phase's snapshots into one Stat per component and pod,
// components first (in Components order, then the shims), then pods by
// namespace and name. CPU is the difference between the first and the last
// snapshot that hold the same name; a name whose CPU time went down (a
// restart) counts from its lowest.
func Summarise(snaps []Snapshot) []Stat {
	if len(snaps) == 0 {
		return nil
	}
	type acc struct {
		Stat
		n                int
		sumPSS           int64
		firstAt, lastAt  time.Time
		firstCPU, maxCPU float64
		lastCPU          float64
	}
	accs := map[string]*acc{}
	for _, s := range snaps {
		for name, u := range s.Usage {
			a := accs[name]
			if a == nil {
				a = &acc{Stat: Stat{Name: name, Kind: u.Kind, Namespace: u.Namespace}, firstAt: s.At, firstCPU: u.CPUSeconds}
				accs[name] = a
			}
			if u.CPUSeconds < a.lastCPU { // restarted: count from here
				a.firstAt, a.firstCPU = s.At, u.CPUSeconds
			}
			a.n++
			a.sumPSS += u.PSS
			a.PeakRSS = max(a.PeakRSS, u.RSS)
			a.PeakPSS = max(a.PeakPSS, u.PSS)
			a.Procs = max(a.Procs, u.Procs)
			a.lastAt, a.lastCPU = s.At, u.CPUSeconds
		}
	}
	order := map[string]int{Shims: len(Components)}
	for i, c := range Components {
		order[c.Name] = i
	}
	var out []Stat
	for _, a := range accs {
		a.MeanPSS = a.sumPSS / int64(a.n)
		if d := a.lastAt.Sub(a.firstAt).Seconds(); d > 0 {
			a.CPUCores = (a.lastCPU - a.firstCPU) / d
		}
		out = append(out, a.Stat)
	}
	sort.Slice(out, func(i, j int) bool {
		oi, iok := order[out[i].Name]
		oj, jok := order[out[j].Name]
		switch {
		case iok && jok:
			return oi < oj
		case iok != jok:
			return iok
		case out[i].Namespace != out[j].Namespace:
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// PodsFromAPI names pods by UID for a Sampler, through kubectl with the
// given kubeconfig.
func PodsFromAPI(kubeconfig string) func(uid string) (PodRef, bool) {
	p := &podNames{kubeconfig: kubeconfig}
	return p.lookup
}

// podNames maps pod UIDs to names, asking the API server again (at most
// every few seconds) when it meets a UID it does not know.
type podNames struct {
	kubeconfig string
	byUID      map[string]PodRef
	asked      time.Time
}

func (p *podNames) lookup(uid string) (PodRef, bool) {
	if ref, ok := p.byUID[uid]; ok {
		return ref, true
	}
	if time.Since(p.asked) < 5*time.Second {
		return PodRef{}, false
	}
	p.asked = time.Now()
	cmd := exec.Command("kubectl", "get", "pods", "-A", "-o", "json")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+p.kubeconfig)
	out, err := cmd.Output()
	if err != nil {
		return PodRef{}, false
	}
	var list struct {
		Items []struct {
			Metadata struct{ UID, Name, Namespace string } `json:"metadata"`
		} `json:"items"`
	}
	if json.Unmarshal(out, &list) != nil {
		return PodRef{}, false
	}
	p.byUID = map[string]PodRef{}
	for _, it := range list.Items {
		p.byUID[it.Metadata.UID] = PodRef{Namespace: it.Metadata.Namespace, Name: it.Metadata.Name}
	}
	ref, ok := p.byUID[uid]
	return ref, ok
}
