package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is what a run did and found.
type Summary struct {
	Seed    uint64        `json:"seed"`
	Started time.Time     `json:"started"`
	Elapsed time.Duration `json:"-"`
	Config  RunConfig     `json:"config"`
	// Pass is true when Problems is empty.
	Pass     bool     `json:"pass"`
	Problems []string `json:"problems"`

	Faults []Fault `json:"faults"`
	// SteadyLag is the median pipeline lag before the first fault.
	SteadyLag time.Duration `json:"-"`

	Load        LoadTotals `json:"published"`
	LoadSeconds float64    `json:"load_seconds"`
	// Counted is the sum of window counts by window and metric.
	Counted     map[string]map[string]int64 `json:"counted"`
	DeadLetters map[string]int              `json:"dead_letters"`
	Late        int                         `json:"late"`
	Alerts      AlertSummary                `json:"alerts"`
	// Ready is each target's readiness at the end.
	Ready        map[string]bool `json:"ready"`
	StopProblems []string        `json:"stop_problems,omitempty"`
}

// RunConfig is the part of Config the summary records.
type RunConfig struct {
	Duration    string   `json:"duration"`
	Devices     int      `json:"devices"`
	Rate        float64  `json:"rate"`
	Processors  int      `json:"processors"`
	NATSServers int      `json:"nats_servers"`
	Windows     []string `json:"windows"`
	Lateness    string   `json:"lateness"`
	IdleGrace   string   `json:"idle_grace"`
	MaxDown     string   `json:"max_down"`
	Gap         string   `json:"gap"`
	Targets     []string `json:"targets,omitempty"`
	Kinds       []string `json:"kinds,omitempty"`
	FreshWithin string   `json:"fresh_within"`
	Burst       int      `json:"burst"`
	FutureSkew  string   `json:"future_skew"`
	Race        bool     `json:"race"`
}

func summaryConfig(c *Config) RunConfig {
	return RunConfig{Duration: c.Duration.String(), Devices: c.Devices, Rate: c.Rate, Processors: c.Processors,
		NATSServers: c.NATSServers, Windows: c.Windows, Lateness: c.Lateness.String(), IdleGrace: c.IdleGrace.String(),
		MaxDown: c.MaxDown.String(), Gap: c.MinGap.String() + "-" + c.MaxGap.String(), Targets: c.Targets, Kinds: c.Kinds,
		FreshWithin: c.FreshWithin.String(), Burst: c.Burst, FutureSkew: c.FutureSkew.String(), Race: c.Race}
}

// AlertSummary is what the webhook receiver saw against ALERTS.
type AlertSummary struct {
	// Transitions are the alert changes on ALERTS that notify (firing,
	// resolved); Notifications the distinct notification IDs delivered;
	// Deliveries every request the webhook answered.
	Transitions   int      `json:"transitions"`
	Notifications int      `json:"notifications"`
	Deliveries    int      `json:"deliveries"`
	NotifiedTwice []string `json:"notified_twice"`
}

func (s *Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	return json.Marshal(struct {
		*plain
		Elapsed   float64 `json:"elapsed_seconds"`
		SteadyLag float64 `json:"steady_lag_seconds"`
	}{(*plain)(s), secs(s.Elapsed), secs(s.SteadyLag)})
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// WriteText prints the summary for a terminal.
func (s *Summary) WriteText(w io.Writer) {
	verdict := "PASS"
	if !s.Pass {
		verdict = "FAIL"
	}
	c := s.Config
	fmt.Fprintf(w, "chaos %s  seed %d  %s of load, %d devices at %.0f msgs/s, %d NATS server(s), %d processors, windows %s (run took %s)\n",
		verdict, s.Seed, c.Duration, c.Devices, c.Rate, c.NATSServers, c.Processors, strings.Join(c.Windows, ","), s.Elapsed.Round(time.Second))
	fmt.Fprintf(w, "faults (%d); steady lag before the first %s; drained = every device's newest reading in InfluxDB within %s\n",
		len(s.Faults), dur(s.SteadyLag), c.FreshWithin)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tat\ttime (UTC)\ttarget\tkind\tdown\tready after\tdrained after\tpeak lag\tlate\terror")
	for _, f := range s.Faults {
		fmt.Fprintf(tw, "  %d\t%.1fs\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", f.N, f.At.Seconds(), f.Time.Format("15:04:05.000"),
			f.Target, f.Kind, dur(f.Down), dur(f.ReadyAfter), dur(f.DrainedAfter), dur(f.PeakLag), f.Late, f.Err)
	}
	tw.Flush()
	fmt.Fprintf(w, "published (acknowledged by the broker) %d of %d attempted, %d failed\n", s.Load.Acked, s.Load.Attempted, s.Load.Failed)
	for _, win := range sortedKeys(s.Counted) {
		var parts []string
		for _, m := range metrics {
			parts = append(parts, fmt.Sprintf("%s %d (%+d)", m, s.Counted[win][m], s.Counted[win][m]-s.Load.Acked))
		}
		fmt.Fprintf(w, "counted telemetry_%s: %s\n", win, strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "late %d, dead letters %v\n", s.Late, s.DeadLetters)
	fmt.Fprintf(w, "alerts: %d notifying changes on ALERTS, %d notifications, %d deliveries, notified twice: %d\n",
		s.Alerts.Transitions, s.Alerts.Notifications, s.Alerts.Deliveries, len(s.Alerts.NotifiedTwice))
	var notReady []string
	for _, name := range sortedKeys(s.Ready) {
		if !s.Ready[name] {
			notReady = append(notReady, name)
		}
	}
	if len(notReady) == 0 {
		fmt.Fprintf(w, "ready at the end: all %d\n", len(s.Ready))
	} else {
		fmt.Fprintf(w, "NOT ready at the end: %s\n", strings.Join(notReady, ", "))
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "PROBLEM: %s\n", p)
	}
}

// WriteMarkdown writes the summary as a Markdown report.
func (s *Summary) WriteMarkdown(w io.Writer) {
	verdict := "pass"
	if !s.Pass {
		verdict = "**FAIL**"
	}
	c := s.Config
	fmt.Fprintf(w, "# Chaos run %s, seed %d: %s\n\n", s.Started.Format("2006-01-02 15:04Z"), s.Seed, verdict)
	fmt.Fprintf(w, "%s of load, %d devices at %.0f msgs/s; %d NATS server(s), %d processors; windows %s, lateness %s, idle grace %s; "+
		"faults every %s after recovery, down or paused up to %s; race build: %v. The run took %s.\n\n",
		c.Duration, c.Devices, c.Rate, c.NATSServers, c.Processors, strings.Join(c.Windows, ", "), c.Lateness, c.IdleGrace,
		c.Gap, c.MaxDown, c.Race, s.Elapsed.Round(time.Second))
	fmt.Fprintf(w, "## Faults\n\nReady after: from the injection until the target answered ready again. Drained after: until every device's "+
		"newest reading in InfluxDB was at most %s old (steady lag before the first fault: %s). Peak lag: the worst seen in between.\n\n",
		c.FreshWithin, dur(s.SteadyLag))
	fmt.Fprintln(w, "| # | at | time (UTC) | target | kind | down | ready after | drained after | peak lag | late readings | error |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, f := range s.Faults {
		fmt.Fprintf(w, "| %d | %.1fs | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", f.N, f.At.Seconds(), f.Time.Format("15:04:05.000"),
			f.Target, f.Kind, dur(f.Down), dur(f.ReadyAfter), dur(f.DrainedAfter), dur(f.PeakLag), f.Late, f.Err)
	}
	fmt.Fprintf(w, "\n## Verdict\n\n| check | result |\n|---|---|\n")
	fmt.Fprintf(w, "| published (PUBACK) | %d of %d attempted, %d failed |\n", s.Load.Acked, s.Load.Attempted, s.Load.Failed)
	for _, win := range sortedKeys(s.Counted) {
		for _, m := range metrics {
			fmt.Fprintf(w, "| telemetry_%s %s | %d (%+d) |\n", win, m, s.Counted[win][m], s.Counted[win][m]-s.Load.Acked)
		}
	}
	fmt.Fprintf(w, "| late | %d |\n| dead letters | %v |\n", s.Late, s.DeadLetters)
	fmt.Fprintf(w, "| alerts | %d notifying changes, %d notifications, %d deliveries |\n| notified twice | %d |\n",
		s.Alerts.Transitions, s.Alerts.Notifications, s.Alerts.Deliveries, len(s.Alerts.NotifiedTwice))
	ready := 0
	for _, ok := range s.Ready {
		if ok {
			ready++
		}
	}
	fmt.Fprintf(w, "| ready at the end | %d of %d |\n", ready, len(s.Ready))
	if len(s.Problems) > 0 {
		fmt.Fprintf(w, "\n## Problems\n\n")
		for _, p := range s.Problems {
			fmt.Fprintf(w, "- %s\n", p)
		}
	}
}

// WriteFiles writes chaos-<time>-seed<seed>.json and .md into dir and
// returns their base path.
func (s *Summary) WriteFiles(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(dir, fmt.Sprintf("chaos-%s-seed%d", s.Started.Format("20060102-150405"), s.Seed))
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	f, err := os.Create(base + ".md")
	if err != nil {
		return "", err
	}
	s.WriteMarkdown(f)
	return base, f.Close()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
