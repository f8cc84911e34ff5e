package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// samplePaced is a paced step both tools kept: Telegraf 18 µs per reading
// alone and 34 with the servers, edgeflow 12 and 26.
func samplePaced() *PacedVersus {
	usage := func(cpuMicros float64, rssMB int64) Usage {
		return Usage{CPUPerMillion: cpuMicros, RSSMaxBytes: rssMB << 20}
	}
	return &PacedVersus{
		Rate: 20000, DurationSeconds: 30, MaxLagSeconds: 5,
		Telegraf: Burst{Acked: 600000, Counted: 600000, Complete: true, Seconds: 30.6, DrainSeconds: 0.6, Rate: 19608, PublishRate: 19980,
			Pipeline: []string{"telegraf"}, Shared: []string{"mosquitto", "influxd"},
			Usage: map[string]Usage{"telegraf": usage(18, 80), "mosquitto": usage(9, 12), "influxd": usage(7, 220),
				"nats": usage(0.2, 30), "bench": usage(0.3, 20), "loadgen": usage(12, 0)}},
		Edgeflow: Burst{Acked: 600000, Counted: 600000, Complete: true, Seconds: 31.2, DrainSeconds: 1.2, Rate: 19231, PublishRate: 19970,
			Pipeline: []string{"ingest", "processor", "nats"}, Shared: []string{"mosquitto", "influxd"},
			Usage: map[string]Usage{"ingest": usage(6, 25), "processor": usage(3, 30), "nats": usage(3, 60),
				"mosquitto": usage(9, 13), "influxd": usage(5, 230), "bench": usage(0.3, 21), "loadgen": usage(12, 0)}},
	}
}

func TestPacedCapacityRatio(t *testing.T) {
	p := samplePaced()
	all, tool, ok := p.CapacityRatio()
	if !ok || math.Abs(all-34.0/26) > 1e-9 || math.Abs(tool-18.0/12) > 1e-9 {
		t.Errorf("capacity ratio %v end to end, %v tools alone (ok %v); want 34/26 and 18/12", all, tool, ok)
	}
	// The load generator and the bench are in neither side's totals: more
	// of them changes nothing.
	p.Telegraf.Usage["loadgen"] = Usage{CPUPerMillion: 100}
	p.Edgeflow.Usage["bench"] = Usage{CPUPerMillion: 100}
	if all2, tool2, _ := p.CapacityRatio(); all2 != all || tool2 != tool {
		t.Errorf("the load generator or the bench counted: %v, %v", all2, tool2)
	}
	// No CPU measured is no ratio, not an infinite one.
	p.Edgeflow.Usage = map[string]Usage{}
	if _, _, ok := p.CapacityRatio(); ok {
		t.Error("a ratio over no CPU time")
	}
}

func TestPacedMissedPace(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Burst)
		want string // "" = kept the pace
	}{
		{"kept", func(*Burst) {}, ""},
		{"acked just above the tolerance", func(b *Burst) { b.PublishRate = 19001 }, ""},
		{"drained at the limit", func(b *Burst) { b.DrainSeconds = 5 }, ""},
		{"acked too slowly", func(b *Burst) { b.PublishRate = 18990 }, "acked only 18990 of 20000 msgs/s"},
		{"points missing", func(b *Burst) { b.Counted, b.Complete, b.DrainSeconds = 599400, false, 12 }, "599400 of 600000 raw points queryable"},
		{"drained too late", func(b *Burst) { b.DrainSeconds = 6.25 }, "the last raw point 6.2 s after the last publish (limit 5 s)"},
		{"not run", func(b *Burst) { *b = Burst{} }, "not run"},
	} {
		for _, side := range []string{"Telegraf", "edgeflow"} {
			p := samplePaced()
			b := &p.Telegraf
			if side == "edgeflow" {
				b = &p.Edgeflow
			}
			c.edit(b)
			got := strings.Join(p.missedPace(*b), "; ")
			if got != c.want {
				t.Errorf("%s, %s: missed the pace because %q, want %q", c.name, side, got, c.want)
			}
			all, tool, ok := p.CapacityRatio()
			if ok != (c.want == "") || (!ok && (all != 0 || tool != 0)) {
				t.Errorf("%s, %s: capacity ratio %v, %v (ok %v)", c.name, side, all, tool, ok)
			}
			verdict := p.verdictText()
			if c.want == "" && !strings.HasPrefix(verdict, "Telegraf's CPU per reading ÷ edgeflow's: 1.31 end to end, 1.50 the tools alone") {
				t.Errorf("%s, %s: verdict %q", c.name, side, verdict)
			}
			if c.want != "" && verdict != "no capacity ratio: "+side+" did not keep the pace ("+c.want+")" {
				t.Errorf("%s, %s: verdict %q", c.name, side, verdict)
			}
		}
	}
	p := samplePaced()
	p.Telegraf.PublishRate, p.Edgeflow.Counted = 15000, 10
	if got, want := p.verdictText(), "no capacity ratio: Telegraf did not keep the pace (acked only 15000 of 20000 msgs/s), and edgeflow did not keep the pace (10 of 600000 raw points queryable)"; got != want {
		t.Errorf("both missed: %q, want %q", got, want)
	}
}

func TestPacedInTheReport(t *testing.T) {
	r := sampleResult()
	r.Versus = sampleVersus()
	r.Versus.Paced = samplePaced()
	var b strings.Builder
	if err := r.WriteMarkdown(&b, "x.svg"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"### A paced step: 20000 msgs/s for 30 s",
		"acknowledged at 95 % of the rate or more, every raw point is queryable, and the last within 5 s of the last publish",
		"**Capacity, Telegraf's CPU per reading ÷ edgeflow's: 1.31 end to end** (with Mosquitto and InfluxDB), 1.50 the tools alone",
		"| | Telegraf | edgeflow | Telegraf ÷ edgeflow |",
		"| acked msgs/s (PUBACKs; target 20000) | 19980 | 19970 | |",
		"| raw points queryable | 600000 of 600000 | 600000 of 600000 | |",
		"| last raw point after the last publish | 0.60 s | 1.20 s | |",
		"| kept the pace | yes | yes | |",
		"| CPU µs per reading, pipeline (telegraf; ingest + processor + nats) | 18.0 | 12.0 | 1.50 |",
		"| CPU µs per reading, with Mosquitto and InfluxDB | 34.0 | 26.0 | 1.31 |",
		"| peak RSS, pipeline | 80.0 MB | 115.0 MB | 0.70 |",
		"| peak RSS, with Mosquitto and InfluxDB | 312.0 MB | 358.0 MB | 0.87 |",
		"| process | Telegraf paced: CPU µs/reading | peak RSS | edgeflow paced: CPU µs/reading | peak RSS |",
		"| ingest | - | - | 6.0 | 25.0 MB |",
		"| loadgen | 12.0 | - | 12.0 | - |",
		// The burst's part is as it was.
		"**edgeflow ÷ Telegraf: 0.67** (10000 ÷ 14815 msgs/s)",
		"| process | Telegraf burst: CPU µs/reading | peak RSS | edgeflow burst: CPU µs/reading | peak RSS |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	if i, j := strings.Index(md, "## Against Telegraf"), strings.Index(md, "### A paced step"); i < 0 || j < i {
		t.Errorf("the paced step is not inside the Telegraf section:\n%s", md)
	}

	// A tool that missed the pace: said plainly, and no ratio anywhere.
	r.Versus.Paced.Telegraf.PublishRate = 15000
	b.Reset()
	if err := r.WriteMarkdown(&b, "x.svg"); err != nil {
		t.Fatal(err)
	}
	md = b.String()
	paced := md[strings.Index(md, "### A paced step"):]
	for _, want := range []string{
		"**No capacity ratio: Telegraf did not keep the pace (acked only 15000 of 20000 msgs/s).** The CPU per reading below is what each spent",
		"| kept the pace | **no**: acked only 15000 of 20000 msgs/s | yes | |",
		"| CPU µs per reading, pipeline (telegraf; ingest + processor + nats) | 18.0 | 12.0 | - |",
		"| CPU µs per reading, with Mosquitto and InfluxDB | 34.0 | 26.0 | - |",
		"| peak RSS, pipeline | 80.0 MB | 115.0 MB | - |",
	} {
		if !strings.Contains(paced, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, paced)
		}
	}
	if strings.Contains(paced, "1.31") || strings.Contains(paced, "1.50") || strings.Contains(paced, "**Capacity") {
		t.Errorf("a ratio although Telegraf missed the pace:\n%s", paced)
	}

	// Without the paced step (-telegraf-rate 0, or a report from before it).
	r.Versus.Paced = nil
	b.Reset()
	if err := r.WriteMarkdown(&b, "x.svg"); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); strings.Contains(md, "paced") || !strings.Contains(md, "## Against Telegraf") {
		t.Errorf("a report without the paced step:\n%s", md)
	}
}

// A report from before the paced step (no "paced" in versus_telegraf)
// renders without it; one with it keeps it through JSON.
func TestPacedThroughJSON(t *testing.T) {
	r := sampleResult()
	r.Versus = sampleVersus()
	js, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), `"paced"`) {
		t.Errorf("a paced section in JSON without the paced step: %s", js)
	}
	var old Result
	if err := json.Unmarshal(js, &old); err != nil {
		t.Fatal(err)
	}
	if old.Versus == nil || old.Versus.Paced != nil {
		t.Fatalf("old report read as versus %+v", old.Versus)
	}
	var b strings.Builder
	if err := old.WriteMarkdown(&b, ""); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "paced") {
		t.Errorf("an old report renders a paced step:\n%s", b.String())
	}
	var svg strings.Builder
	if err := old.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(svg.String(), "paced") {
		t.Error("an old report's figure has a paced row")
	}

	r.Versus.Paced = samplePaced()
	if js, err = json.Marshal(r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"paced":{"target_msgs_per_s":20000,"duration_seconds":30,"max_lag_seconds":5,`, `"drain_seconds":0.6`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s: %s", want, js)
		}
	}
	var back Result
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.Versus.Paced == nil {
		t.Fatal("the paced step lost through JSON")
	}
	all, tool, ok := back.Versus.Paced.CapacityRatio()
	if want, wantTool, _ := r.Versus.Paced.CapacityRatio(); !ok || all != want || tool != wantTool {
		t.Errorf("capacity ratio through JSON %v, %v (ok %v), want %v, %v", all, tool, ok, want, wantTool)
	}
}

func TestPacedInTheFigure(t *testing.T) {
	for _, kept := range []bool{true, false} {
		r := sampleResult()
		r.Versus = sampleVersus()
		r.Versus.Paced = samplePaced()
		if !kept {
			r.Versus.Paced.Edgeflow.Counted = 10
		}
		var b strings.Builder
		if err := r.WriteSVG(&b); err != nil {
			t.Fatal(err)
		}
		svg := b.String()
		wellFormed(t, svg)
		// The burst's 10 bars, then two groups each for the paced CPU and RSS.
		if n := strings.Count(svg, `class="bar"`); n != 10+4+4 {
			t.Errorf("kept %v: %d bars, want 18", kept, n)
		}
		want := []string{"paced, 20000 msgs/s for 30 s: ", "<title>Telegraf pipeline: 18.0</title>", "<title>edgeflow + broker, DB: 26.0</title>",
			"<title>edgeflow + broker, DB: 358.0</title>"}
		if kept {
			want = append(want, "Telegraf&#39;s CPU per reading ÷ edgeflow&#39;s 1.31")
		} else {
			want = append(want, "no ratio, a tool did not keep the pace")
		}
		for _, w := range want {
			if !strings.Contains(svg, w) {
				t.Errorf("kept %v: SVG lacks %q", kept, w)
			}
		}
		// The paced row is below the burst's, inside the picture.
		withoutPaced := sampleResult()
		withoutPaced.Versus = sampleVersus()
		if r.Versus.height() != withoutPaced.Versus.height()+versusHeight {
			t.Errorf("kept %v: figure height %d, want one row more than %d", kept, r.Versus.height(), withoutPaced.Versus.height())
		}
	}
}
