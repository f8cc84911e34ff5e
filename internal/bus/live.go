package bus

import (
	"bytes"
	"errors"

	"github.com/nats-io/nats.go"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// The live feed is what the dashboard shows as devices' current values. At
// each flush of a partition the processor publishes the newest reading of
// every device it folded since the last one, so NATS delivers a reading to
// the processor only, not once more to every dashboard, and a dashboard
// decodes one reading per device per flush however fast devices send. It
// is core NATS, at most once: a view, not a record (InfluxDB is the record).
// A message is a batch of readings (reading.AppendBatch).

// LiveSubjects is what the dashboard subscribes to; LiveSubject is one
// source's subject (a processor's partition).
const LiveSubjects = "live.>"

// LiveSubject is the live subject of source, such as a partition number.
func LiveSubject(source string) string { return "live." + source }

// LiveBatch holds the newest reading of each device until Publish. Readings
// must be added in the order they were folded: a later one replaces an
// earlier one of its device. The zero value is ready to use.
type LiveBatch struct {
	newest map[liveKey][]byte
	order  []liveKey // first appearance, so a message is deterministic
}

type liveKey struct{ site, device string }

// Add keeps data, a reading of site/device in the wire form, as the
// device's newest. A payload with a newline (not the wire form) is skipped.
func (b *LiveBatch) Add(site, device string, data []byte) {
	if bytes.IndexByte(data, '\n') >= 0 {
		return
	}
	if b.newest == nil {
		b.newest = map[liveKey][]byte{}
	}
	k := liveKey{site, device}
	if _, ok := b.newest[k]; !ok {
		b.order = append(b.order, k)
	}
	b.newest[k] = data
}

// Len is the number of devices held.
func (b *LiveBatch) Len() int { return len(b.order) }

// Publish sends what the batch holds on subject, in messages no larger than
// nc's max payload, and empties the batch whatever happens: a live view
// that missed a flush is brought up to date by the next.
func (b *LiveBatch) Publish(nc *nats.Conn, subject string) error {
	if len(b.order) == 0 {
		return nil
	}
	limit := int(nc.MaxPayload())
	var errs []error
	var msg []byte
	send := func() {
		if len(msg) > 0 {
			errs = append(errs, nc.Publish(subject, msg))
			msg = nil
		}
	}
	for _, k := range b.order {
		data := b.newest[k]
		if len(msg) > 0 && len(msg)+1+len(data) > limit {
			send()
		}
		if len(data) > limit {
			continue // larger than any message: TELEMETRY could not have held it either
		}
		msg = reading.AppendBatch(msg, data)
	}
	send()
	clear(b.newest)
	clear(b.order)
	b.order = b.order[:0]
	return errors.Join(errs...)
}
