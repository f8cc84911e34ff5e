// Package live fans Server-Sent Events out to browsers. Every client has a
// bounded buffer of frames: a slow client loses its oldest frames (counted,
// then told to resync) instead of growing memory or slowing anyone else, and
// a client that stops reading altogether is disconnected by a write deadline.
package live

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults, chosen for a browser on a phone over Wi-Fi behind a small edge box.
const (
	// DefaultBuffer frames per client: at one batch per second this is over
	// a minute of updates, far more than a healthy client ever queues.
	DefaultBuffer = 64
	// DefaultWriteTimeout ends a client whose socket accepted nothing for
	// this long: it vanished without closing, or cannot keep up at all.
	DefaultWriteTimeout = 15 * time.Second
	// DefaultPing keeps idle connections open through proxies and detects
	// clients that went away while nothing was published.
	DefaultPing = 15 * time.Second
	// retryMillis is the reconnection delay the browser is told to use.
	retryMillis = 2000
)

// Topics a client can subscribe to. A device topic is DeviceTopic(site, device).
const (
	TopicDevices  = "devices"  // one batch per tick of every device that changed
	TopicAlerts   = "alerts"   // alert state changes
	TopicPipeline = "pipeline" // pipeline health snapshots
)

// DeviceTopic is the topic of one device's own updates (site and device are
// validated names).
func DeviceTopic(site, device string) string { return "device:" + site + "/" + device }

// ErrClosed is returned by Stream when the hub shuts down (SIGTERM).
var ErrClosed = errors.New("live: hub closed")

// Options configure a Hub; zero values take the defaults above.
type Options struct {
	Buffer       int
	WriteTimeout time.Duration
	Ping         time.Duration
}

// Metrics of a hub.
type Metrics struct {
	Clients prometheus.Gauge
	Dropped prometheus.Counter
	Frames  prometheus.Counter
}

// NewMetrics registers the hub's metrics as edgeflow_dashboard_sse_*.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Clients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeflow_dashboard_sse_clients",
			Help: "Connected Server-Sent Events clients."}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeflow_dashboard_sse_dropped_total",
			Help: "Frames dropped (oldest first) because a client's buffer was full."}),
		Frames: prometheus.NewCounter(prometheus.CounterOpts{Name: "edgeflow_dashboard_sse_frames_total",
			Help: "Frames written to clients."}),
	}
	reg.MustRegister(m.Clients, m.Dropped, m.Frames)
	return m
}

// Hub is the set of connected clients.
type Hub struct {
	opts    Options
	metrics *Metrics

	mu      sync.RWMutex
	clients map[*Client]struct{}
	topics  map[string]int // subscribers per topic
	closed  chan struct{}
	once    sync.Once
}

// NewHub returns a hub; metrics may be nil.
func NewHub(opts Options, metrics *Metrics) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Ping <= 0 {
		opts.Ping = DefaultPing
	}
	if metrics == nil {
		metrics = NewMetrics(prometheus.NewRegistry())
	}
	return &Hub{opts: opts, metrics: metrics, clients: map[*Client]struct{}{}, topics: map[string]int{},
		closed: make(chan struct{})}
}

// Client is one connected browser: a ring of frames waiting to be written.
type Client struct {
	topics map[string]bool
	wake   chan struct{}

	mu      sync.Mutex
	ring    [][]byte
	head, n int
	resync  bool // frames were dropped: tell the browser to reload its snapshot
	dropped int64
}

// Frame encodes one SSE event. data must be a single line (JSON is).
func Frame(event string, data []byte) []byte {
	b := make([]byte, 0, len(event)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

var resyncFrame = Frame("resync", []byte("{}"))

// Subscribe adds a client for topics. Unsubscribe must follow.
func (h *Hub) Subscribe(topics ...string) *Client {
	c, _ := h.TrySubscribe(0, topics...)
	return c
}

// TrySubscribe adds a client for topics unless limit (> 0) clients are
// connected already: the count is checked and taken in one step, so
// clients connecting together cannot exceed it. Unsubscribe must follow a
// client it returns.
func (h *Hub) TrySubscribe(limit int, topics ...string) (*Client, bool) {
	c := &Client{topics: map[string]bool{}, wake: make(chan struct{}, 1), ring: make([][]byte, h.opts.Buffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if limit > 0 && len(h.clients) >= limit {
		return nil, false
	}
	for _, t := range topics {
		if !c.topics[t] {
			c.topics[t] = true
			h.topics[t]++
		}
	}
	h.clients[c] = struct{}{}
	h.metrics.Clients.Inc()
	return c, true
}

// Unsubscribe removes a client; its buffered frames are released.
func (h *Hub) Unsubscribe(c *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	for t := range c.topics {
		if h.topics[t]--; h.topics[t] <= 0 {
			delete(h.topics, t)
		}
	}
	h.metrics.Clients.Dec()
}

// Clients is the number of connected clients.
func (h *Hub) Clients() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients)
}

// Wanted reports whether any client subscribes to topic, so a publisher can
// skip encoding what nobody reads.
func (h *Hub) Wanted(topic string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.topics[topic] > 0
}

// Publish queues frame for every subscriber of topic. It never blocks: a
// full client buffer loses its oldest frame. The frame is shared, not
// copied, so fan-out costs one pointer per client.
func (h *Hub) Publish(topic string, frame []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.topics[topic] == 0 {
		return
	}
	for c := range h.clients {
		if !c.topics[topic] {
			continue
		}
		if c.push(frame) {
			h.metrics.Dropped.Inc()
		}
	}
}

// push appends frame, dropping the oldest if full; it reports a drop.
func (c *Client) push(frame []byte) (dropped bool) {
	c.mu.Lock()
	size := len(c.ring)
	if c.n == size {
		c.ring[c.head] = nil
		c.head = (c.head + 1) % size
		c.n--
		c.resync = true
		c.dropped++
		dropped = true
	}
	c.ring[(c.head+c.n)%size] = frame
	c.n++
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return dropped
}

// take removes and returns every queued frame, with the resync frame first
// when frames were dropped since the last take.
func (c *Client) take(dst [][]byte) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resync {
		dst = append(dst, resyncFrame)
		c.resync = false
	}
	size := len(c.ring)
	for ; c.n > 0; c.n-- {
		dst = append(dst, c.ring[c.head])
		c.ring[c.head] = nil
		c.head = (c.head + 1) % size
	}
	return dst
}

// Queued is the number of frames waiting for the client.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// Dropped is the number of frames this client lost.
func (c *Client) Dropped() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Close ends every stream (each writes a final "bye" event) and refuses new
// ones: the SIGTERM drain, so that http.Server.Shutdown is not held up by
// connections that never go idle.
func (h *Hub) Close() { h.once.Do(func() { close(h.closed) }) }

// Stream writes c's frames to w until ctx ends (the browser went away), the
// hub closes, or a write fails or times out. initial frames (a snapshot) go
// first. It returns nil when the browser left, ErrClosed on shutdown.
func (h *Hub) Stream(ctx context.Context, w http.ResponseWriter, c *Client, initial ...[]byte) error {
	select {
	case <-h.closed:
		return ErrClosed
	default:
	}
	rc := http.NewResponseController(w)
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx/Traefik buffering would defeat live updates
	w.WriteHeader(http.StatusOK)

	write := func(frames [][]byte) error {
		if err := rc.SetWriteDeadline(time.Now().Add(h.opts.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return fmt.Errorf("sse write: %w", err)
			}
		}
		h.metrics.Frames.Add(float64(len(frames)))
		if err := rc.Flush(); err != nil {
			return fmt.Errorf("sse flush: %w", err)
		}
		return nil
	}
	first := append([][]byte{[]byte(fmt.Sprintf("retry: %d\n\n", retryMillis))}, initial...)
	if err := write(first); err != nil {
		return err
	}
	ping := time.NewTicker(h.opts.Ping)
	defer ping.Stop()
	var batch [][]byte
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.closed:
			_ = write([][]byte{Frame("bye", []byte("{}"))})
			return ErrClosed
		case <-ping.C:
			if err := write([][]byte{[]byte(": ping\n\n")}); err != nil {
				return err
			}
		case <-c.wake:
			batch = c.take(batch[:0])
			if err := write(batch); err != nil {
				return err
			}
			clear(batch)
		}
	}
}
