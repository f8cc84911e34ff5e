package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of issue 5, on the 2-core CI-class machine.
const (
	targetSustained  = 20_000 // msgs/s, end to end, zero loss, exact windows
	targetRatio      = 0.7    // of the raw MQTT leg
	targetIdleRSS    = 20 << 20
	targetLoadRSS    = 40 << 20
	targetAckRate    = 5_000 // the rate at which the ack latency target applies
	targetAckP99Ms   = 10.0
	targetWindowP99S = 1.0
)

// Result is one bench run: what the report is made of.
type Result struct {
	StartedAt time.Time `json:"started_at"`
	Machine   Machine   `json:"machine"`
	Settings  Settings  `json:"settings"`
	Raw       RawLeg    `json:"raw_leg"`
	// IdleRSS is each member's RSS after start-up, before any step.
	IdleRSS map[string]int64 `json:"idle_rss_bytes"`
	// Roles says which members are our services ("service"), which the
	// servers they run on ("server") and which the bench ("bench").
	Roles map[string]string `json:"roles"`
	Steps []Step            `json:"steps"`
	// Sustained is the highest rate of a step that passed, every lower step
	// having passed too; 0 when none did.
	Sustained float64  `json:"sustained_msgs_per_s"`
	Ratio     float64  `json:"ratio_to_raw_leg"`
	Targets   []Target `json:"targets"`
	// Versus is the Telegraf leg (issue 16); nil when it did not run.
	Versus *Versus `json:"versus_telegraf,omitempty"`
}

// Settings are the bench's own flags as run.
type Settings struct {
	Devices     int       `json:"devices"`
	Publishers  int       `json:"publishers"`
	StepSeconds float64   `json:"step_seconds"`
	Rates       []float64 `json:"rates"`
	RawCount    int64     `json:"raw_leg_count"`
	// RawPublishers is the raw leg's connections; reports before it existed
	// (0) ran the raw leg with the steps' Publishers.
	RawPublishers int     `json:"raw_leg_publishers,omitempty"`
	MaxLagSecond  float64 `json:"max_lag_seconds"`
	Quick         bool    `json:"quick"`
	NATSSync      string  `json:"nats_sync"`
	// TelegrafOnly runs were the Telegraf leg alone: no raw leg, no steps.
	TelegrafOnly bool `json:"telegraf_only,omitempty"`
}

// Machine says where the figures come from.
type Machine struct {
	Hostname string `json:"hostname"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	LoadAvg  string `json:"load_avg_at_start"`
	Note     string `json:"note,omitempty"`
}

func describeMachine(note string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Note: note}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb >> 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

// Target is one of issue 5's targets, met or not.
type Target struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// sustained returns the index of the highest step that passed with every
// step before it passing too, or -1.
func sustained(steps []Step) int {
	best := -1
	for i, s := range steps {
		if !s.Pass {
			break
		}
		best = i
	}
	return best
}

// evaluate fills Sustained, Ratio and Targets from the steps.
func (r *Result) evaluate() {
	i := sustained(r.Steps)
	r.Sustained, r.Ratio = 0, 0
	if i >= 0 {
		r.Sustained = r.Steps[i].Rate
	}
	if r.Raw.Rate > 0 {
		r.Ratio = r.Sustained / r.Raw.Rate
	}
	r.Targets = []Target{
		{Name: "sustained end to end", Want: fmt.Sprintf(">= %d msgs/s", targetSustained),
			Got: fmt.Sprintf("%.0f msgs/s", r.Sustained), Met: r.Sustained >= targetSustained},
		{Name: "ratio to the raw MQTT leg", Want: fmt.Sprintf(">= %.1f", targetRatio),
			Got: fmt.Sprintf("%.2f (raw leg %.0f msgs/s)", r.Ratio, r.Raw.Rate), Met: r.Ratio >= targetRatio},
	}
	var loss, dups int64
	for _, s := range r.Steps {
		loss += s.Loss
		dups += s.Duplicates
	}
	r.Targets = append(r.Targets, Target{Name: "loss and duplicates, every step", Want: "0 and 0",
		Got: fmt.Sprintf("%d and %d", loss, dups), Met: loss == 0 && dups == 0 && len(r.Steps) > 0})
	for _, name := range r.services() {
		idle := r.IdleRSS[name]
		r.Targets = append(r.Targets, Target{Name: name + " RSS idle", Want: "<= 20 MB",
			Got: mb(idle), Met: idle > 0 && idle <= targetIdleRSS})
		if i >= 0 {
			peak := r.Steps[i].Usage[name].RSSMaxBytes
			r.Targets = append(r.Targets, Target{Name: name + " RSS at the sustained rate", Want: "<= 40 MB",
				Got: mb(peak), Met: peak > 0 && peak <= targetLoadRSS})
		} else {
			r.Targets = append(r.Targets, Target{Name: name + " RSS at the sustained rate", Want: "<= 40 MB", Got: "no sustained step"})
		}
	}
	ack := Target{Name: "MQTT receipt → JetStream ack p99 at 5,000 msgs/s", Want: fmt.Sprintf("< %.0f ms", targetAckP99Ms), Got: "no 5,000 msgs/s step"}
	for _, s := range r.Steps {
		if s.Rate == targetAckRate {
			ack.Got = fmt.Sprintf("%s ms", latencyText(s.AckP99Ms, s.AckP99Overflow))
			ack.Met = s.Pass && !s.AckP99Overflow && s.AckP99Ms >= 0 && s.AckP99Ms < targetAckP99Ms
		}
	}
	r.Targets = append(r.Targets, ack)
	win := Target{Name: "window end → InfluxDB p99 at the sustained rate", Want: fmt.Sprintf("< %.0f s", targetWindowP99S), Got: "no sustained step"}
	if i >= 0 {
		win.Got = "no window closed during the load"
		if p99 := r.Steps[i].WindowP99S; p99 >= 0 {
			win.Got = fmt.Sprintf("%.2f s", p99)
			win.Met = p99 < targetWindowP99S
		}
	}
	r.Targets = append(r.Targets, win)
	// The window latency includes the lateness by definition; this is the
	// same target read as the delay the pipeline adds beyond it.
	delay := Target{Name: "window end + lateness → InfluxDB p99 at the sustained rate", Want: fmt.Sprintf("< %.0f s", targetWindowP99S), Got: "no sustained step"}
	if i >= 0 {
		delay.Got = "no window closed during the load"
		// > 0: reports from before the metric have none (0).
		if p99 := r.Steps[i].CloseDelayP99S; p99 > 0 {
			delay.Got = fmt.Sprintf("%.2f s", p99)
			delay.Met = p99 < targetWindowP99S
		}
	}
	r.Targets = append(r.Targets, delay)
}

// services are the members the RSS targets apply to, in a stable order.
func (r *Result) services() []string {
	var out []string
	for name, role := range r.Roles {
		if role == "service" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// members are all measured processes: services first, then the servers
// and the bench.
func (r *Result) members() []string {
	out := r.services()
	var servers []string
	for name, role := range r.Roles {
		if role != "service" {
			servers = append(servers, name)
		}
	}
	slices.Sort(servers)
	return append(out, servers...)
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func latencyText(v float64, overflow bool) string {
	if math.IsNaN(v) || v < 0 {
		return "-"
	}
	if overflow {
		return fmt.Sprintf("> %.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// WriteMarkdown writes the report for a person.
func (r *Result) WriteMarkdown(w io.Writer, svgName string) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# edgeflow bench, %s\n\n", r.StartedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %d cores (%s), %d MB, Linux %s, %s; load average at start %s.", m.Hostname, m.Cores, m.CPU, m.MemoryMB, m.Kernel, m.Go, m.LoadAvg)
	if m.Note != "" {
		fmt.Fprintf(&b, " %s", m.Note)
	}
	st := r.Settings
	if st.TelegrafOnly {
		b.WriteString(" NATS storage sync " + cmp.Or(st.NATSSync, "2m (server default)") + "; only the Telegraf leg ran (-telegraf-only).\n\n")
		if r.Versus != nil {
			r.Versus.writeMarkdown(&b)
		}
		if svgName != "" {
			fmt.Fprintf(&b, "\n![edgeflow against Telegraf](%s)\n", svgName)
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, "\n\nLoad: QoS 1, %d devices over %d publisher connections, %.0f s per step%s; NATS storage sync %s.\n\n",
		st.Devices, st.Publishers, st.StepSeconds, map[bool]string{true: " (quick mode: a smoke run, not a result)", false: ""}[st.Quick], cmp.Or(st.NATSSync, "2m (server default)"))
	fmt.Fprintf(&b, "**Sustained: %.0f msgs/s**, %.2f × the raw MQTT leg (%.0f msgs/s: %d of %d messages from %d publisher connection(s) received by one paho subscriber in %.1f s).\n\n",
		r.Sustained, r.Ratio, r.Raw.Rate, r.Raw.Received, r.Raw.Published, cmp.Or(st.RawPublishers, st.Publishers), r.Raw.Seconds)

	b.WriteString("## Targets (issue 5)\n\n| target | want | got | met |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, map[bool]string{true: "yes", false: "**no**"}[t.Met])
	}

	b.WriteString("\n## Steps\n\n| target msgs/s | published msgs/s | throughput msgs/s | acked | counted | loss | dups | drain s | counted after s | ack p50/p99 ms | window p50/p99 s | beyond lateness p50/p99 s | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Steps {
		verdict := "pass"
		if !s.Pass {
			verdict = "fail: " + strings.Join(s.Reasons, "; ")
		}
		fmt.Fprintf(&b, "| %.0f | %.0f | %.0f | %d | %d | %d | %d | %.1f | %.1f | %s / %s | %s / %s | %s / %s | %s |\n",
			s.Rate, s.PublishRate, s.Throughput, s.Acked, s.Counted, s.Loss, s.Duplicates, s.DrainSeconds, s.CountSeconds,
			latencyText(s.AckP50Ms, false), latencyText(s.AckP99Ms, s.AckP99Overflow), latencyText(s.WindowP50S, false), latencyText(s.WindowP99S, false),
			latencyText(s.CloseDelayP50S, false), latencyText(s.CloseDelayP99S, false), verdict)
	}

	b.WriteString("\n## Resources per step\n\nRSS: idle before the steps, then the peak during each step. CPU: seconds per million messages over the step until its windows were counted, and cores busy while the load ran.\n\n| process | idle RSS |")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, " %.0fk: RSS; CPU s/M; cores |", s.Rate/1000)
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(r.Steps)) + "\n")
	for _, name := range append(r.members(), "loadgen") {
		idle := "-"
		if v, ok := r.IdleRSS[name]; ok {
			idle = mb(v)
		}
		fmt.Fprintf(&b, "| %s | %s |", name, idle)
		for _, s := range r.Steps {
			u := s.Usage[name]
			rss := "-"
			if u.RSSMaxBytes > 0 {
				rss = mb(u.RSSMaxBytes)
			}
			fmt.Fprintf(&b, " %s; %.1f; %.2f |", rss, u.CPUPerMillion, u.LoadCores)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| whole machine (all work on it) | |")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, " ; ; %.2f of %d |", s.MachineCores, r.Machine.Cores)
	}
	if _, ok := r.Roles[embeddedNATS]; ok {
		b.WriteString("\n\n`nats+bench` is the bench process, which embeds NATS (and ran the raw leg's subscriber before the steps); `loadgen` is the load generator (CPU from wait4; its RSS is not measured).\n")
	} else {
		b.WriteString("\n\n`nats` is the nats-server process; `bench` is the bench process (the raw leg's subscriber before the steps, then the scraping and counting); " +
			"`loadgen` is the load generator (CPU from wait4; its RSS is not measured).\n")
	}
	if r.Versus != nil {
		b.WriteString("\n")
		r.Versus.writeMarkdown(&b)
	}
	if svgName != "" {
		fmt.Fprintf(&b, "\n![throughput and RSS per step](%s)\n", svgName)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeReport writes <stamp>.json, .md and .svg under dir and returns the
// Markdown's path.
func writeReport(dir string, r *Result) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	stamp := r.StartedAt.UTC().Format("20060102T150405Z")
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	var md strings.Builder
	if err := r.WriteMarkdown(&md, stamp+".svg"); err != nil {
		return "", err
	}
	var svg strings.Builder
	if err := r.WriteSVG(&svg); err != nil {
		return "", err
	}
	for _, f := range []struct{ name, body string }{
		{stamp + ".json", string(js) + "\n"}, {stamp + ".md", md.String()}, {stamp + ".svg", svg.String()},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, stamp+".md"), nil
}
