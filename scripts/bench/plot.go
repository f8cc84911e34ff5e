package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The plot's geometry, in SVG user units.
const (
	plotWidth   = 760
	panelHeight = 240
	plotLeft    = 70
	plotRight   = 170 // room for the legend
	plotTop     = 56
	panelGap    = 70
)

// seriesColours are distinct on white and for common colour blindness (Okabe-Ito).
var seriesColours = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

// WriteSVG draws two panels over the rate steps: throughput (published,
// carried end to end, the raw MQTT leg and the target rate), with each step
// marked pass or fail; and the peak RSS of each of our services. Below them
// (or alone, with -telegraf-only) the Telegraf leg's bars, the paced
// step's in a row of their own.
func (r *Result) WriteSVG(w io.Writer) error {
	var b strings.Builder
	steps := !r.Settings.TelegrafOnly
	height, versusTop := 0, plotTop
	if steps {
		height = plotTop + 2*panelHeight + panelGap + 50
		versusTop = height + 20
	}
	if r.Versus != nil {
		height = versusTop + r.Versus.height()
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	if !steps {
		fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">edgeflow bench: the Telegraf leg alone</text>`+"\n", plotLeft)
		if r.Versus != nil {
			r.Versus.drawVersus(&b, versusTop)
		}
		b.WriteString("</svg>\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">edgeflow bench: sustained %.0f msgs/s, %.2f × raw MQTT leg</text>`+"\n",
		plotLeft, r.Sustained, r.Ratio)

	xs := make([]string, len(r.Steps))
	target, published, carried := make([]float64, len(r.Steps)), make([]float64, len(r.Steps)), make([]float64, len(r.Steps))
	for i, s := range r.Steps {
		xs[i] = fmt.Sprintf("%.0fk", s.Rate/1000)
		target[i], published[i], carried[i] = s.Rate, s.PublishRate, s.Throughput
	}
	top := panel{title: "throughput (msgs/s)", y0: plotTop, xs: xs}
	top.add("target", target, true)
	top.add("published", published, false)
	top.add("end to end", carried, false)
	if r.Raw.Rate > 0 {
		top.hline = r.Raw.Rate
		top.hlineLabel = fmt.Sprintf("raw MQTT leg %.0f", r.Raw.Rate)
	}
	top.marks = make([]bool, len(r.Steps))
	for i, s := range r.Steps {
		top.marks[i] = s.Pass
	}
	top.draw(&b)

	// Our services only: the servers' hundreds of MB would flatten them,
	// and the RSS targets are theirs. The report's table has every process.
	rss := panel{title: "peak RSS of the services (MB)", y0: plotTop + panelHeight + panelGap, xs: xs}
	for _, name := range r.services() {
		vals := make([]float64, len(r.Steps))
		for i, s := range r.Steps {
			vals[i] = float64(s.Usage[name].RSSMaxBytes) / (1 << 20)
		}
		rss.add(name, vals, false)
	}
	rss.hline, rss.hlineLabel = targetLoadRSS/(1<<20), "service target 40 MB"
	rss.draw(&b)
	if r.Versus != nil {
		r.Versus.drawVersus(&b, versusTop)
	}

	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type series struct {
	name   string
	vals   []float64
	dashed bool
}

// panel is one chart: categorical x (the steps), linear y from 0.
type panel struct {
	title      string
	y0         int
	xs         []string
	series     []series
	hline      float64
	hlineLabel string
	marks      []bool // per step: pass (true) or fail; nil for none
}

func (p *panel) add(name string, vals []float64, dashed bool) {
	p.series = append(p.series, series{name: name, vals: vals, dashed: dashed})
}

func (p *panel) draw(b *strings.Builder) {
	innerW := float64(plotWidth - plotLeft - plotRight)
	ymax := p.hline
	for _, s := range p.series {
		for _, v := range s.vals {
			ymax = math.Max(ymax, v)
		}
	}
	ymax = niceCeil(ymax * 1.05)
	x := func(i int) float64 {
		if len(p.xs) <= 1 {
			return plotLeft + innerW/2
		}
		return plotLeft + innerW*float64(i)/float64(len(p.xs)-1)
	}
	y := func(v float64) float64 { return float64(p.y0+panelHeight) - float64(panelHeight)*v/ymax }

	fmt.Fprintf(b, `<g class="panel"><text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", plotLeft, p.y0-8, html.EscapeString(p.title))
	for k := 0; k <= 4; k++ {
		v := ymax * float64(k) / 4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			plotLeft, y(v), plotLeft+innerW, y(v), plotLeft-6, y(v)+4, axisLabel(v))
	}
	for i, label := range p.xs {
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), p.y0+panelHeight+16, html.EscapeString(label))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">target rate (msgs/s)</text>`+"\n", plotLeft+innerW/2, p.y0+panelHeight+32)
	if p.hline > 0 {
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="2,3"/><text x="%d" y="%.1f" fill="#666">%s</text>`+"\n",
			plotLeft, y(p.hline), plotLeft+innerW, y(p.hline), plotLeft+4, y(p.hline)-4, html.EscapeString(p.hlineLabel))
	}
	for k, s := range p.series {
		colour := seriesColours[k%len(seriesColours)]
		var pts []string
		for i, v := range s.vals {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
		}
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6,4"`
		}
		fmt.Fprintf(b, `<polyline class="series" fill="none" stroke="%s" stroke-width="2"%s points="%s"><title>%s</title></polyline>`+"\n",
			colour, dash, strings.Join(pts, " "), html.EscapeString(s.name))
		for i, v := range s.vals {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(i), y(v), colour)
		}
		ly := p.y0 + 10 + 18*k
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`+"\n",
			plotWidth-plotRight+15, ly, plotWidth-plotRight+35, ly, colour, dash, plotWidth-plotRight+40, ly+4, html.EscapeString(s.name))
	}
	for i, pass := range p.marks {
		mark, colour := "✗", "#D55E00"
		if pass {
			mark, colour = "✓", "#009E73"
		}
		fmt.Fprintf(b, `<text class="verdict" x="%.1f" y="%d" text-anchor="middle" fill="%s" font-size="14">%s</text>`+"\n", x(i), p.y0+12, colour, mark)
	}
	b.WriteString("</g>\n")
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 || math.IsNaN(v) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func axisLabel(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%gk", math.Round(v/100)/10)
	}
	return fmt.Sprintf("%g", math.Round(v*10)/10)
}
