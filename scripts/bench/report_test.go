package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func sampleResult() *Result {
	r := &Result{
		Settings: Settings{Publishers: 4, RawPublishers: 1},
		Raw:      RawLeg{Rate: 24000, Received: 300000, Published: 300000, Seconds: 12.5},
		Roles:    map[string]string{"ingest": "service", "processor": "service", "mosquitto": "server"},
		IdleRSS:  map[string]int64{"ingest": 12 << 20, "processor": 14 << 20, "mosquitto": 5 << 20},
		Steps: []Step{
			{Rate: 5000, PublishRate: 4990, Throughput: 4980, Pass: true, AckP99Ms: 3,
				Usage: map[string]Usage{"ingest": {RSSMaxBytes: 20 << 20}, "processor": {RSSMaxBytes: 25 << 20}, "mosquitto": {RSSMaxBytes: 8 << 20}}},
			{Rate: 10000, PublishRate: 9990, Throughput: 7000, Pass: false, Reasons: []string{"backlog never drained"},
				Usage: map[string]Usage{"ingest": {RSSMaxBytes: 30 << 20}, "processor": {RSSMaxBytes: 45 << 20}, "mosquitto": {RSSMaxBytes: 9 << 20}}},
		},
	}
	r.evaluate()
	return r
}

func TestSVGRendersBothPanels(t *testing.T) {
	var b strings.Builder
	if err := sampleResult().WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	// Well-formed XML, so browsers and viewers render it.
	wellFormed(t, svg)
	for _, want := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg"`, "throughput (msgs/s)", "peak RSS of the services (MB)",
		"raw MQTT leg 24000", "service target 40 MB", ">5k<", ">10k<",
		"<title>end to end</title>", "<title>ingest</title>", "<title>processor</title>", "sustained 5000 msgs/s",
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if n := strings.Count(svg, `class="series"`); n != 3+2 {
		t.Errorf("%d series, want 3 throughput + 2 services' RSS", n)
	}
	if strings.Contains(svg, "<title>mosquitto</title>") {
		t.Error("the RSS panel plots the servers too")
	}
	if strings.Count(svg, "✓") != 1 || strings.Count(svg, "✗") != 1 {
		t.Error("want one pass and one fail mark")
	}
}

func TestMarkdownStatesTargetsAndSteps(t *testing.T) {
	var b strings.Builder
	if err := sampleResult().WriteMarkdown(&b, "x.svg"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"**Sustained: 5000 msgs/s**, 0.21 × the raw MQTT leg", "300000 of 300000 messages from 1 publisher connection(s)", "| sustained end to end | >= 20000 msgs/s | 5000 msgs/s | **no** |",
		"| ingest RSS idle | <= 20 MB | 12.0 MB | yes |", "fail: backlog never drained", "![throughput and RSS per step](x.svg)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.5: 1, 7: 10, 12: 20, 31000: 50000, 50000: 50000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

// wellFormed fails t unless svg is well-formed XML, which browsers and
// viewers render.
func wellFormed(t *testing.T, svg string) {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
	}
}
