// Package devices keeps what the dashboard knows about every device: when it
// was last seen, the latest value of each metric and a short recent history
// for sparklines and the live chart, coalesced to one point per metric per
// second so that a chatty device costs no more than a quiet one.
//
// Memory is bounded in bytes, not devices: every device is charged what it
// holds (DeviceBytes, SeriesBytes and its names), and when the total passes
// the budget the devices heard from least recently are forgotten. A new
// device is never refused, so devices that sent once (or never existed)
// cannot lock real ones out; a forgotten device comes back when it next
// sends.
package devices

import (
	"container/heap"
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

// What the registry charges for what it holds, in bytes of heap, besides
// the bytes of the names: a device (its struct, its map of series, its
// entries in the registry's map and heap) and a series (its ring, 1.9 kB,
// allocated in Go's 2048-byte size class, and its map entry).
// TestAccountingMatchesHeap checks them against runtime.MemStats.
const (
	DeviceBytes = 448
	SeriesBytes = 2048 + 64
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
	changed bool   // since the last TakeChanged
	unit    string // the last one the device sent (SenML u), "" if none
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
	bytes      int64 // charged for this device
	index      int   // in Registry.bySeen
}

// Registry is safe for concurrent use.
type Registry struct {
	budget int64

	mu      sync.Mutex
	devices map[key]*device
	bySeen  bySeen // least recently heard first
	bytes   int64  // charged for every device
	evicted int64
}

type key struct{ site, device string }

// NewRegistry keeps devices within budget bytes of heap (what they are
// charged, see DeviceBytes), forgetting those heard from least recently to
// make room.
func NewRegistry(budget int64) *Registry {
	return &Registry{budget: budget, devices: map[key]*device{}}
}

// Update records a validated reading received at now. A device not known
// yet is always taken, others forgotten if need be.
func (g *Registry) Update(r *reading.Reading, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.device(r.Site, r.Device)
	for name, v := range r.Metrics {
		if s := g.series(d, name); s != nil {
			s.add(Point{T: r.TS, V: v})
			if u := r.Units[name]; u != "" {
				s.unit = u
			}
		}
	}
	d.changed = true
	g.heard(d, now.UnixMilli())
}

// Seed records a value known from history (InfluxDB) at start-up: seen is
// when the device was last heard of. Names must be valid. A device is
// seeded only as far as the budget holds it beside those heard since.
func (g *Registry) Seed(site, dev, metric string, p Point, seen int64) {
	if !reading.ValidName(site) || !reading.ValidName(dev) || !reading.ValidName(metric) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.device(site, dev)
	if s := g.series(d, metric); s != nil {
		s.add(p)
	}
	g.heard(d, seen)
}

// device returns the device, new ones charged and first in line to be
// forgotten until heard says when they were heard.
func (g *Registry) device(site, name string) *device {
	k := key{site, name}
	d := g.devices[k]
	if d == nil {
		d = &device{site: site, name: name, metrics: map[string]*series{},
			bytes: DeviceBytes + int64(len(site)+len(name))}
		g.devices[k] = d
		g.bytes += d.bytes
		heap.Push(&g.bySeen, d)
	}
	return d
}

// series returns the device's series of metric, made (and charged) if
// need be; nil beyond MaxMetrics.
func (g *Registry) series(d *device, metric string) *series {
	s := d.metrics[metric]
	if s == nil {
		if len(d.metrics) >= MaxMetrics {
			return nil
		}
		s = &series{}
		d.metrics[metric] = s
		cost := SeriesBytes + int64(len(metric))
		d.bytes += cost
		g.bytes += cost
	}
	return s
}

// heard moves d to when it was last heard of, then forgets the devices
// heard from least recently while over budget: d too, if it is older than
// every other (a seeded device the budget has no room for).
func (g *Registry) heard(d *device, seen int64) {
	d.seen = max(d.seen, seen)
	heap.Fix(&g.bySeen, d.index)
	for g.bytes > g.budget && len(g.bySeen) > 1 {
		old := heap.Pop(&g.bySeen).(*device)
		delete(g.devices, key{old.site, old.name})
		g.bytes -= old.bytes
		g.evicted++
	}
}

// Evicted is the number of devices forgotten to stay within the budget.
func (g *Registry) Evicted() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evicted
}

// Bytes is what the devices kept are charged, at most the budget (but for
// one device larger than the whole budget).
func (g *Registry) Bytes() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bytes
}

// Len is the number of devices known.
func (g *Registry) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.devices)
}

// bySeen is a min-heap of devices by when they were last heard of.
type bySeen []*device

func (h bySeen) Len() int           { return len(h) }
func (h bySeen) Less(i, j int) bool { return h[i].seen < h[j].seen }
func (h bySeen) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *bySeen) Push(x any) {
	d := x.(*device)
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *bySeen) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return d
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
	Unit   string    `json:"unit,omitempty"`   // as the device sent it (reading.ValidUnit)
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
			s.Metrics[name] = Metric{Last: last, Spark: spark, Unit: ser.unit}
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
			s.Metrics[mname] = Metric{Last: last, Points: ser.points(RingLen), Unit: ser.unit}
		}
	}
	return s, true
}
