package footprint

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// The time figure's geometry, in SVG user units.
const (
	serW      = 820
	serH      = 420
	serLeft   = 60
	serRight  = 20
	serTop    = 80
	serBottom = 50
)

// layoutColour: stock blue, the K3s layout vermilion (Okabe-Ito).
func layoutColour(l Layout) string {
	if l.Name == "k3s" {
		return "#D55E00"
	}
	return "#0072B2"
}

// WriteSeriesSVG draws each layout's PSS over time: the Kubernetes
// processes (solid) and containerd with its shims (dashed), from the start
// of up.sh; each phase's start is marked on the layout's own line of ticks.
func WriteSeriesSVG(w io.Writer, title string, layouts []Layout) error {
	var peak int64 = 1
	var end float64 = 1
	for _, l := range layouts {
		for _, p := range l.Series {
			peak = max(peak, p.Kubernetes, p.Containerd)
			end = max(end, p.At.Seconds())
		}
	}
	ystep := niceStep(float64(peak) / (1 << 20) / 5)
	ytop := math.Ceil(float64(peak)/(1<<20)/ystep) * ystep
	xstep := niceStep(end / 8)
	xtop := math.Ceil(end/xstep) * xstep
	plotW, plotH := float64(serW-serLeft-serRight), float64(serH-serTop-serBottom)
	x := func(s float64) float64 { return serLeft + plotW*s/xtop }
	y := func(b int64) float64 { return float64(serH-serBottom) - plotH*float64(b)/(1<<20)/ytop }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", serW, serH, serW, serH)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	b.WriteString(`<text x="10" y="40" fill="#444">PSS in MiB over seconds since up.sh started; solid: the Kubernetes processes (datastore included), dashed: containerd and its shims</text>` + "\n")
	lx := serLeft
	for _, l := range layouts {
		c := layoutColour(l)
		fmt.Fprintf(&b, `<line x1="%d" y1="54" x2="%d" y2="54" stroke="%s" stroke-width="2"/><text x="%d" y="58">%s</text>`+"\n", lx, lx+24, c, lx+30, html.EscapeString(layoutLabel(l)))
		lx += 60 + 7*len(layoutLabel(l))
	}
	for v := 0.0; v <= ytop+ystep/2; v += ystep {
		gy := float64(serH-serBottom) - plotH*v/ytop
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end" fill="#444">%g</text>`+"\n", serLeft, gy, serW-serRight, gy, serLeft-6, gy+4, v)
	}
	for v := 0.0; v <= xtop+xstep/2; v += xstep {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%g</text>`+"\n", x(v), serH-serBottom+16, v)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#444">s</text>`+"\n", serW/2, serH-serBottom+32)
	for _, l := range layouts {
		c := layoutColour(l)
		for _, line := range []struct {
			dash string
			v    func(Point) int64
		}{{"", func(p Point) int64 { return p.Kubernetes }}, {` stroke-dasharray="6 4"`, func(p Point) int64 { return p.Containerd }}} {
			var pts []string
			for _, p := range l.Series {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At.Seconds()), y(line.v(p))))
			}
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`+"\n", c, line.dash, strings.Join(pts, " "))
			}
		}
		// Phase starts: a tick and the phase's name, the stock layout's at
		// the top, the K3s layout's at the bottom.
		ty := serTop - 10
		if l.Name == "k3s" {
			ty = serH - serBottom - 6
		}
		last := ""
		for _, p := range l.Series {
			if p.Phase == last {
				continue
			}
			last = p.Phase
			px := x(p.At.Seconds())
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="2 3" stroke-opacity="0.5"/>`+"\n", px, serTop, px, serH-serBottom, c)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="9" fill="%s">%s</text>`+"\n", px+2, ty, c, html.EscapeString(shortPhase(p.Phase)))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func layoutLabel(l Layout) string {
	if l.Name == "k3s" {
		return "K3s layout: k3s-server (kine/SQLite + 5 components)"
	}
	return "stock: etcd + 5 component processes"
}

func shortPhase(p string) string {
	switch {
	case strings.HasPrefix(p, PhaseClusterIdle):
		return "idle"
	case strings.HasPrefix(p, PhaseDeploy):
		return "deploy"
	case strings.HasPrefix(p, PhasePipelineIdle):
		return "pipeline idle"
	case strings.HasPrefix(p, PhaseLoad):
		return "load"
	}
	return p
}
