package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Reasons a message counts as failed.
const (
	reasonNotStored  = "refused by the MQTT client before sending"
	reasonNoAck      = "no acknowledgement before the drain timeout"
	reasonNotWritten = "not written before the drain timeout"
)

// pacerBatch is the most tokens a publisher takes at once: large enough that
// the clock is read once per batch at high rates, small enough that a run
// never takes many more tokens than it uses.
const pacerBatch = 64

// deviceStats is what one device's messages came to.
type deviceStats struct {
	attempted, acked, failed        int64
	firstSeq, lastSeq               uint64 // of acknowledged originals, valid when acked > 0
	dupsSent, dupsAcked, dupsFailed int64
}

// publisher is one MQTT connection and the devices it owns: device i
// belongs to publisher i mod Publishers, so each device's messages leave in
// order on one connection.
type publisher struct {
	cfg    *Config
	index  int
	client mqtt.Client
	store  *ackStore
	pacer  *pacer

	// Owned by the run goroutine.
	devices []int    // global device numbers, ascending
	quota   []int64  // distinct messages per device, -1 = unlimited
	nextSeq []uint64 // next seq per device

	// lost is set when the connection drops; see waitResent.
	lost atomic.Bool

	// slots holds one entry per unacknowledged message; its capacity is MaxInFlight.
	slots chan struct{}
	// qos0 carries QoS 0 tokens to waitQoS0, which has no store to tell it.
	qos0      chan qos0Publish
	qos0Done  chan struct{}
	qos0Abort chan struct{}

	mu       sync.Mutex
	stats    []deviceStats // by position in devices
	counts   Counts        // the sums of stats, read by the rate line
	latency  latencyHistogram
	failures map[string]int64
}

type qos0Publish struct {
	tok mqtt.Token
	m   *message
}

func newPublisher(cfg *Config, index int) *publisher {
	p := &publisher{
		cfg:      cfg,
		index:    index,
		slots:    make(chan struct{}, cfg.MaxInFlight),
		failures: make(map[string]int64),
	}
	for d := index; d < cfg.Devices; d += cfg.Publishers {
		p.devices = append(p.devices, d)
		p.quota = append(p.quota, cfg.DeviceQuota(d))
		p.nextSeq = append(p.nextSeq, cfg.SeqStart)
	}
	p.stats = make([]deviceStats, len(p.devices))
	p.store = newAckStore(p.acked)
	if cfg.QoS == 0 {
		p.qos0 = make(chan qos0Publish, cfg.MaxInFlight)
		p.qos0Done = make(chan struct{})
		p.qos0Abort = make(chan struct{})
	}
	return p
}

// local is the position of global device d in p.devices.
func (p *publisher) local(d int) int { return d / p.cfg.Publishers }

// run publishes round-robin over the publisher's devices until every quota
// is met or ctx ends.
func (p *publisher) run(ctx context.Context) {
	tokens := 0
	var buf []byte
	for {
		progressed := false
		for i, d := range p.devices {
			if p.quota[i] >= 0 && p.nextSeq[i]-p.cfg.SeqStart >= uint64(p.quota[i]) {
				continue
			}
			progressed = true
			seq := p.nextSeq[i]
			dup := Duplicated(d, seq, p.cfg.Duplicates)
			need := 1
			if dup {
				need = 2
			}
			for tokens < need {
				n, err := p.pacer.take(ctx, pacerBatch)
				if err != nil {
					return
				}
				tokens += n
			}
			tokens -= need
			// A fresh slice per message: paho keeps it until the broker acknowledges.
			buf = appendPayload(make([]byte, 0, len(buf)), time.Now().UnixMilli(), seq, d, p.cfg.Metrics)
			topic := p.cfg.Topic(d)
			if !p.publish(ctx, topic, buf, &message{device: d, seq: seq}) {
				return
			}
			p.nextSeq[i]++
			if dup && !p.publish(ctx, topic, buf, &message{device: d, seq: seq, dup: true}) {
				return
			}
		}
		if !progressed {
			return
		}
	}
}

// publish hands one message to paho without waiting for its acknowledgement.
// It returns false when ctx ended while every in-flight slot was taken.
func (p *publisher) publish(ctx context.Context, topic string, payload []byte, m *message) bool {
	if p.lost.Load() && !p.waitResent(ctx) {
		return false
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	p.attempted(m)
	m.sentAt = time.Now()
	if p.cfg.QoS == 0 {
		p.qos0 <- qos0Publish{tok: p.client.Publish(topic, 0, false, payload), m: m}
		return true
	}
	p.store.expect(m)
	tok := p.client.Publish(topic, p.cfg.QoS, false, payload)
	stored := p.store.stored()
	// Paho completes a token with an error synchronously inside Publish;
	// a token not done yet is simply in flight.
	var err error
	select {
	case <-tok.Done():
		err = tok.Error()
	default:
	}
	switch {
	case !stored:
		reason := reasonNotStored
		if err != nil {
			reason = err.Error()
		}
		p.failed(m, reason)
		p.release()
	case err != nil:
		// Still in paho's store (e.g. "publish was broken by timeout"): a
		// reconnect resends it, so only the drain decides its fate.
		p.store.mu.Lock()
		m.err = err
		p.store.mu.Unlock()
	}
	return true
}

// resendPoll is how often waitResent looks at the connection: a reconnect
// takes paho a second or more, so polling costs nothing that matters.
const resendPoll = 10 * time.Millisecond

// waitResent holds publishing back after a connection loss until paho has
// reconnected and every message it resent was acknowledged. Paho marks the
// connection up before it resends what its store holds, so a message
// published meanwhile could overtake older ones of the same device. It
// returns false when ctx ends first.
func (p *publisher) waitResent(ctx context.Context) bool {
	t := time.NewTicker(resendPoll)
	defer t.Stop()
	for {
		if p.client.IsConnectionOpen() && len(p.slots) == 0 {
			p.lost.Store(false)
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// waitQoS0 completes QoS 0 publishes, in order, when paho has written them.
func (p *publisher) waitQoS0() {
	defer close(p.qos0Done)
	for q := range p.qos0 {
		select {
		case <-q.tok.Done():
			if err := q.tok.Error(); err != nil {
				p.failed(q.m, err.Error())
			} else {
				p.acked(q.m, time.Now())
			}
		case <-p.qos0Abort:
			p.failed(q.m, reasonNotWritten)
		}
		p.release()
	}
}

func (p *publisher) release() {
	select {
	case <-p.slots:
	default:
	}
}

// drain waits until nothing is in flight or deadline passes, then counts
// whatever is still unacknowledged as failed. It reports whether everything
// was acknowledged.
func (p *publisher) drain(deadline <-chan struct{}) bool {
	if p.qos0 != nil {
		close(p.qos0)
	}
	complete := true
fill:
	for range cap(p.slots) {
		select {
		case p.slots <- struct{}{}:
		case <-deadline:
			complete = false
			break fill
		}
	}
	if p.qos0 != nil {
		close(p.qos0Abort)
		<-p.qos0Done
	}
	for _, m := range p.store.finish() {
		reason := reasonNoAck
		if m.err != nil {
			reason = m.err.Error()
		}
		p.failed(m, reason)
	}
	return complete
}

func (p *publisher) attempted(m *message) {
	p.mu.Lock()
	st := &p.stats[p.local(m.device)]
	if m.dup {
		st.dupsSent++
	} else {
		st.attempted++
		p.counts.Attempted++
	}
	p.counts.Sent++
	p.mu.Unlock()
}

// acked is called by paho's store (on paho's network goroutine) or by
// waitQoS0; it must not block.
func (p *publisher) acked(m *message, at time.Time) {
	p.mu.Lock()
	st := &p.stats[p.local(m.device)]
	p.latency.record(at.Sub(m.sentAt))
	if m.dup {
		st.dupsAcked++
	} else {
		if st.acked == 0 || m.seq < st.firstSeq {
			st.firstSeq = m.seq
		}
		if st.acked == 0 || m.seq > st.lastSeq {
			st.lastSeq = m.seq
		}
		st.acked++
	}
	p.counts.Acked++
	p.mu.Unlock()
	if p.cfg.QoS > 0 {
		p.release()
	}
}

func (p *publisher) failed(m *message, reason string) {
	p.mu.Lock()
	st := &p.stats[p.local(m.device)]
	if m.dup {
		st.dupsFailed++
	} else {
		st.failed++
	}
	p.counts.Failed++
	p.failures[reason]++
	p.mu.Unlock()
}

// Duplicated reports whether device's message seq is published twice. It is
// a pure function, so a test can tell which messages were, and a hash, so
// duplicates spread over devices and time instead of following the
// round-robin order of publishing.
func Duplicated(device int, seq uint64, fraction float64) bool {
	if fraction <= 0 {
		return false
	}
	// splitmix64 finaliser over the device and seq.
	x := uint64(device)<<40 ^ seq
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < fraction
}
