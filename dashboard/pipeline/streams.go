package pipeline

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// Stream is one stream's size and the backlog of each of its consumers.
type Stream struct {
	Name      string     `json:"name"`
	Exists    bool       `json:"exists"`
	Msgs      uint64     `json:"msgs"`
	Bytes     uint64     `json:"bytes"`
	LastSeq   uint64     `json:"last_seq"`
	Consumers []Consumer `json:"consumers"`
}

// Consumer is one consumer's backlog: messages not yet delivered and
// delivered but not acknowledged.
type Consumer struct {
	Name       string `json:"name"`
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
}

// Streams are the streams of the contract, in pipeline order.
var Streams = []string{bus.StreamTelemetry, bus.StreamAggregates, bus.StreamAlerts, bus.StreamDeadLetter}

// maxConsumers listed per stream: ephemeral consumers of browsers-worth of
// dashboards must not make the page huge.
const maxConsumers = 20

// ReadStreams returns the state of the contract's streams. TELEMETRY's
// message count is the unprocessed backlog: processors purge what they
// have checkpointed.
func ReadStreams(ctx context.Context, js jetstream.JetStream) []Stream {
	out := make([]Stream, 0, len(Streams))
	for _, name := range Streams {
		st := Stream{Name: name, Consumers: []Consumer{}}
		s, err := js.Stream(ctx, name)
		if err != nil {
			out = append(out, st)
			continue
		}
		info, err := s.Info(ctx)
		if err != nil {
			out = append(out, st)
			continue
		}
		st.Exists = true
		st.Msgs, st.Bytes, st.LastSeq = info.State.Msgs, info.State.Bytes, info.State.LastSeq
		// Durable consumers are listed by name; ephemeral ones, such as
		// the processors' partition readers, are summed.
		var ephemeral Consumer
		n := 0
		for ci := range s.ListConsumers(ctx).Info() {
			if ci.Config.Durable == "" {
				ephemeral.Pending += ci.NumPending
				ephemeral.AckPending += ci.NumAckPending
				n++
				continue
			}
			if len(st.Consumers) < maxConsumers {
				st.Consumers = append(st.Consumers, Consumer{Name: ci.Name, Pending: ci.NumPending, AckPending: ci.NumAckPending})
			}
		}
		if n > 0 {
			ephemeral.Name = "ephemeral ×" + strconv.Itoa(n)
			st.Consumers = append(st.Consumers, ephemeral)
		}
		sort.Slice(st.Consumers, func(i, j int) bool { return st.Consumers[i].Pending > st.Consumers[j].Pending })
		out = append(out, st)
	}
	return out
}

// DeadLetter is one dead-lettered message as the browser shows it: every
// string in it came from a device or broker and is text, never markup.
type DeadLetter struct {
	Seq     uint64 `json:"seq"`
	Service string `json:"service"`
	Topic   string `json:"topic"`
	Reason  string `json:"reason"`
	Detail  string `json:"detail,omitempty"`
	Time    int64  `json:"time"` // Unix ms
	Size    int    `json:"size"`
	Excerpt string `json:"excerpt"`
}

// ExcerptBytes of a dead-lettered body are shown.
const ExcerptBytes = 200

// NewDeadLetter reads a DEADLETTER record (see internal/bus/deadletter.go).
func NewDeadLetter(subject string, seq uint64, hdr map[string][]string, body []byte, stored time.Time) DeadLetter {
	get := func(k string) string {
		if v := hdr[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	d := DeadLetter{Seq: seq, Service: strings.TrimPrefix(subject, "deadletter."),
		Topic: clean(get(bus.HeaderSource), 512), Reason: clean(get(bus.HeaderReason), 64),
		Detail: clean(get(bus.HeaderDetail), 512), Size: len(body), Time: stored.UnixMilli()}
	if !reading.ValidName(d.Service) {
		d.Service = "?"
	}
	if t, err := time.Parse(time.RFC3339Nano, get(bus.HeaderTime)); err == nil {
		d.Time = t.UnixMilli()
	}
	if n, err := strconv.Atoi(get(bus.HeaderOriginalSize)); err == nil && n > d.Size {
		d.Size = n
	}
	d.Excerpt = clean(string(body[:min(len(body), ExcerptBytes)]), ExcerptBytes)
	return d
}

// clean makes untrusted bytes displayable text: valid UTF-8, no control
// characters, bounded. It does not escape markup: the browser renders it
// with textContent.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = reading.Truncate(s, max)
	}
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// ErrNoStream is returned while a stream does not exist yet.
var ErrNoStream = errors.New("stream does not exist yet")
