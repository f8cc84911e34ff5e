// Package devices keeps what the dashboard knows about every device: when it
// was last seen, the latest value of each metric and a short recent history
// for sparklines and the live chart, coalesced to one point per metric per
// second so that a chatty device costs no more than a quiet one.
package devices

import (
	"sort"
	"sync"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Limits that bound memory whatever the devices send.
const (
	// RingLen points of recent history per metric: two minutes at one point
	// a second, the span of the device page's live chart.
	RingLen = 120
	// SparkLen points of each metric in the overview's sparklines.
	SparkLen = 30
	// MaxMetrics per device kept; ingest accepts up to 256 per reading,
	// which no overview card can show.
	MaxMetrics = 32
	// resolution is the coalescing step of the rings (ms).
	resolution = 1000
)

// Point is one value at a device time (Unix ms).
type Point struct {
	T int64
	V float64
}

// MarshalJSON encodes a point as [t,v], the compact form the browser reads.
func (p Point) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 32)
	b = append(b, '[')
	b = appendInt(b, p.T)
	b = append(b, ',')
	b = appendFloat(b, p.V)
	return append(b, ']'), nil
}

type series struct {
	ring    [RingLen]Point
	head, n int
	changed bool // since the last TakeChanged
}

func (s *series) last() (Point, bool) {
	if s.n == 0 {
		return Point{}, false
	}
	return s.ring[(s.head+s.n-1)%RingLen], true
}

// add appends p, replacing the last point when p falls in the same second
// (coalescing), and ignores points older than the last one.
func (s *series) add(p Point) {
	if last, ok := s.last(); ok {
		if p.T < last.T {
			return
		}
		if p.T/resolution == last.T/resolution {
			s.ring[(s.head+s.n-1)%RingLen] = p
			s.changed = true
			return
		}
	}
	if s.n == RingLen {
		s.head = (s.head + 1) % RingLen
		s.n--
	}
	s.ring[(s.head+s.n)%RingLen] = p
	s.n++
	s.changed = true
}

func (s *series) points(max int) []Point {
	n := min(s.n, max)
	out := make([]Point, n)
	for i := range n {
		out[i] = s.ring[(s.head+s.n-n+i)%RingLen]
	}
	return out
}

type device struct {
	site, name string
	seen       int64 // wall clock of the last reading, Unix ms
	metrics    map[string]*series
	changed    bool
}

// Registry is safe for concurrent use.
type Registry struct {
	max int

	mu      sync.Mutex
	devices map[key]*device
	// refused counts readings of new devices beyond max.
	refused int64
}

type key struct{ site, device string }

// NewRegistry tracks up to maxDevices devices; readings of further devices
// are refused (and counted) rather than growing memory without bound.
func NewRegistry(maxDevices int) *Registry {
	return &Registry{max: maxDevices, devices: map[key]*device{}}
}

// Update records a validated reading received at now. It reports false
// when the reading was refused because the registry is full.
func (g *Registry) Update(r *reading.Reading, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.device(r.Site, r.Device)
	if d == nil {
		g.refused++
		return false
	}
	d.seen = max(d.seen, now.UnixMilli())
	for name, v := range r.Metrics {
		s := d.metrics[name]
		if s == nil {
			if len(d.metrics) >= MaxMetrics {
				continue
			}
			s = &series{}
			d.metrics[name] = s
		}
		s.add(Point{T: r.TS, V: v})
	}
	d.changed = true
	return true
}

// Seed records a value known from history (InfluxDB) at start-up: seen is
// when the device was last heard of. Names must be valid.
func (g *Registry) Seed(site, dev, metric string, p Point, seen int64) {
	if !reading.ValidName(site) || !reading.ValidName(dev) || !reading.ValidName(metric) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.device(site, dev)
	if d == nil {
		return
	}
	d.seen = max(d.seen, seen)
	s := d.metrics[metric]
	if s == nil {
		if len(d.metrics) >= MaxMetrics {
			return
		}
		s = &series{}
		d.metrics[metric] = s
	}
	s.add(p)
}

func (g *Registry) device(site, name string) *device {
	k := key{site, name}
	d := g.devices[k]
	if d == nil {
		if len(g.devices) >= g.max {
			return nil
		}
		d = &device{site: site, name: name, metrics: map[string]*series{}}
		g.devices[k] = d
	}
	return d
}

// Refused is the number of readings refused because the registry was full.
func (g *Registry) Refused() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused
}

// Len is the number of devices known.
func (g *Registry) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.devices)
}

// Update is one device's change since the previous tick: its last-seen
// time and the newest point of each metric that changed.
type Update struct {
	Site    string           `json:"site"`
	Device  string           `json:"device"`
	Seen    int64            `json:"seen"`
	Metrics map[string]Point `json:"m"`
}

// TakeChanged returns one Update per device that changed since the last
// call, sorted by site and device: the coalesced batch of a live tick.
func (g *Registry) TakeChanged() []Update {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Update
	for _, d := range g.devices {
		if !d.changed {
			continue
		}
		d.changed = false
		u := Update{Site: d.site, Device: d.name, Seen: d.seen, Metrics: map[string]Point{}}
		for name, s := range d.metrics {
			if !s.changed {
				continue
			}
			s.changed = false
			if p, ok := s.last(); ok {
				u.Metrics[name] = p
			}
		}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		return out[i].Device < out[j].Device
	})
	return out
}

// Metric is one metric of a device as the browser reads it.
type Metric struct {
	Last   Point     `json:"last"`
	Spark  []float64 `json:"spark,omitempty"`  // overview: recent values
	Points []Point   `json:"points,omitempty"` // device page: recent points
}

// Summary is one device in the overview or on its own page.
type Summary struct {
	Site    string            `json:"site"`
	Device  string            `json:"device"`
	Seen    int64             `json:"seen"`
	Metrics map[string]Metric `json:"m"`
}

// Overview returns every device with its latest values and sparklines,
// sorted by site and device.
func (g *Registry) Overview() []Summary {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Summary, 0, len(g.devices))
	for _, d := range g.devices {
		s := Summary{Site: d.site, Device: d.name, Seen: d.seen, Metrics: make(map[string]Metric, len(d.metrics))}
		for name, ser := range d.metrics {
			last, ok := ser.last()
			if !ok {
				continue
			}
			pts := ser.points(SparkLen)
			spark := make([]float64, len(pts))
			for i, p := range pts {
				spark[i] = p.V
			}
			s.Metrics[name] = Metric{Last: last, Spark: spark}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		return out[i].Device < out[j].Device
	})
	return out
}

// Device returns one device with the recent points of every metric.
func (g *Registry) Device(site, name string) (Summary, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.devices[key{site, name}]
	if d == nil {
		return Summary{}, false
	}
	s := Summary{Site: d.site, Device: d.name, Seen: d.seen, Metrics: make(map[string]Metric, len(d.metrics))}
	for mname, ser := range d.metrics {
		if last, ok := ser.last(); ok {
			s.Metrics[mname] = Metric{Last: last, Points: ser.points(RingLen)}
		}
	}
	return s, true
}
