package footprint

import (
	"fmt"
	"html"
	"io"
	"math"
	"regexp"
	"strings"
	"time"
)

// Phase is a stretch of time the cluster spent in one state (nothing
// deployed, the pipeline idle, the pipeline under load), with what each
// component and pod used during it.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration"`
	Samples  int           `json:"samples"`
	Stats    []Stat        `json:"stats"`
}

// Totals sums a phase's mean PSS and CPU by kind: what the control plane,
// the node's own daemons and the pods take together.
func (p Phase) Totals() map[string]Stat {
	t := map[string]Stat{}
	for _, s := range p.Stats {
		a := t[s.Kind]
		a.Name, a.Kind = s.Kind, s.Kind
		a.Procs += s.Procs
		a.PeakRSS += s.PeakRSS
		a.PeakPSS += s.PeakPSS
		a.MeanPSS += s.MeanPSS
		a.CPUCores += s.CPUCores
		t[s.Kind] = a
	}
	return t
}

var (
	statefulPod   = regexp.MustCompile(`^(.+)-[0-9]+$`)
	deploymentPod = regexp.MustCompile(`^(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}$`)
)

// Workload is the Deployment or StatefulSet a pod name belongs to, by the
// names the controllers give pods (name-<hash>-<id>, name-<ordinal>).
func Workload(pod string) string {
	if m := deploymentPod.FindStringSubmatch(pod); m != nil {
		return m[1]
	}
	if m := statefulPod.FindStringSubmatch(pod); m != nil {
		return m[1]
	}
	return pod
}

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// WriteMarkdown writes one table per phase (every component and pod: peak
// RSS, peak and mean PSS, CPU) and a line of totals by kind.
func WriteMarkdown(w io.Writer, phases []Phase) error {
	var b strings.Builder
	for _, p := range phases {
		fmt.Fprintf(&b, "### %s (%s, %d samples)\n\n", p.Name, p.Duration.Round(time.Second), p.Samples)
		b.WriteString("| what | kind | processes | peak RSS MiB | peak PSS MiB | mean PSS MiB | CPU % of a core |\n|---|---|--:|--:|--:|--:|--:|\n")
		for _, s := range p.Stats {
			name := s.Name
			if s.Namespace != "" {
				name = s.Namespace + "/" + s.Name
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %.1f |\n", name, s.Kind, s.Procs, mib(s.PeakRSS), mib(s.PeakPSS), mib(s.MeanPSS), 100*s.CPUCores)
		}
		t := p.Totals()
		for _, k := range []string{Server, ControlPlane, Node, Pod} {
			if s, ok := t[k]; ok {
				fmt.Fprintf(&b, "| **all of %s** | | %d | %s | %s | **%s** | **%.1f** |\n", k, s.Procs, mib(s.PeakRSS), mib(s.PeakPSS), mib(s.MeanPSS), 100*s.CPUCores)
			}
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// The figure's geometry, in SVG user units.
const (
	figWidth  = 820
	figLeft   = 200
	figRight  = 40
	figTop    = 70
	barHeight = 9
	rowGap    = 10
)

// phaseColours are distinct on white and for common colour blindness (Okabe-Ito).
var phaseColours = []string{"#56B4E9", "#009E73", "#D55E00", "#CC79A7", "#E69F00", "#0072B2"}

// row is one line of the figure: a component, or one pod of a workload
// (the biggest of its replicas).
type row struct {
	label string
	kind  string
	pss   []int64 // per phase; -1 where absent
}

// rows lists the components in order, then each workload once.
func rows(phases []Phase) []row {
	var out []row
	index := map[string]int{}
	for pi, p := range phases {
		for _, s := range p.Stats {
			label := s.Name
			if s.Kind == Pod {
				label = Workload(s.Name)
				if s.Namespace != "edgeflow" {
					label = s.Namespace + "/" + label
				}
			}
			i, ok := index[label]
			if !ok {
				i = len(out)
				index[label] = i
				r := row{label: label, kind: s.Kind, pss: make([]int64, len(phases))}
				for j := range r.pss {
					r.pss[j] = -1
				}
				out = append(out, r)
			}
			out[i].pss[pi] = max(out[i].pss[pi], s.MeanPSS)
		}
	}
	return out
}

// WriteSVG draws the mean PSS of every component and of one pod of each
// workload, one bar per phase: the figure of docs/k3s-vs-kubernetes.md.
func WriteSVG(w io.Writer, title string, phases []Phase) error {
	rs := rows(phases)
	var peak int64 = 1
	for _, r := range rs {
		for _, v := range r.pss {
			peak = max(peak, v)
		}
	}
	step := niceStep(float64(peak) / (1 << 20) / 5)
	top := math.Ceil(float64(peak)/(1<<20)/step) * step
	plotW := float64(figWidth - figLeft - figRight)
	x := func(b int64) float64 { return figLeft + plotW*float64(b)/(1<<20)/top }
	rowH := len(phases)*barHeight + rowGap
	kindGap := 14
	// The legend wraps to more lines when the phases' names do not fit on one.
	type entry struct{ x, y int }
	var legend []entry
	lx, ly := figLeft, 48
	for _, p := range phases {
		w := 30 + 7*len(p.Name)
		if lx+w > figWidth && lx > figLeft {
			lx, ly = figLeft, ly+16
		}
		legend = append(legend, entry{lx, ly})
		lx += w
	}
	plotTop := figTop + ly - 48
	height := plotTop + len(rs)*rowH + 3*kindGap + 60

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		figWidth, height, figWidth, height)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="10" y="40" fill="#444">mean PSS in MiB (shared pages split among the processes that map them); pods: the largest replica of each workload</text>`+"\n")
	// Legend.
	for i, p := range phases {
		e := legend[i]
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			e.x, e.y, phaseColours[i%len(phaseColours)], e.x+16, e.y+9, html.EscapeString(p.Name))
	}
	y := plotTop
	plotBottom := height - 40
	// Grid.
	for v := 0.0; v <= top+step/2; v += step {
		gx := figLeft + plotW*v/top
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle" fill="#444">%g</text>`+"\n",
			gx, plotTop-4, gx, plotBottom, gx, plotBottom+15, v)
	}
	lastKind := ""
	for _, r := range rs {
		if r.kind != lastKind {
			y += kindGap
			fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold" fill="#444">%s</text>`+"\n", y-2, html.EscapeString(r.kind))
			lastKind = r.kind
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", figLeft-6, y+len(phases)*barHeight/2+4, html.EscapeString(r.label))
		for pi, v := range r.pss {
			if v >= 0 {
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s, %s: %s MiB</title></rect>`+"\n",
					figLeft, y+pi*barHeight, math.Max(x(v)-figLeft, 0.5), barHeight-1, phaseColours[pi%len(phaseColours)],
					html.EscapeString(r.label), html.EscapeString(phases[pi].Name), mib(v))
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9" fill="#444">%s</text>`+"\n", x(v)+3, y+pi*barHeight+barHeight-1, mib(v))
			}
		}
		y += rowH
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceStep rounds a raw grid step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}
