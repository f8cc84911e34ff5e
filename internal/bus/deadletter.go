package bus

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Dead-letter headers. The body is the original bytes (truncated to
// MaxDeadLetterBody; Edgeflow-Original-Size then says how large it was).
const (
	HeaderReason       = "Edgeflow-Reason" // short stable code, e.g. invalid_json
	HeaderDetail       = "Edgeflow-Detail" // human-readable explanation
	HeaderSource       = "Edgeflow-Source" // MQTT topic or stream subject the message came from
	HeaderTime         = "Edgeflow-Time"   // RFC 3339 time of rejection
	HeaderOriginalSize = "Edgeflow-Original-Size"
)

// MaxDeadLetterBody caps the bytes kept of a rejected message: a hostile 100 MB
// payload must not become a 100 MB record (NATS refuses more than its
// max_payload anyway, and the record would then be lost).
const MaxDeadLetterBody = 64 << 10

// DeadLetter is one rejected message.
type DeadLetter struct {
	Service string // deadletter.{service}
	Reason  string
	Detail  string
	Source  string
	Body    []byte
}

// Msg builds the NATS message of d. Header values come from untrusted input,
// so they are truncated and stripped of control characters.
func (d DeadLetter) Msg(now time.Time) *nats.Msg {
	body := d.Body
	m := nats.NewMsg(reading.DeadLetterSubject(d.Service))
	if len(body) > MaxDeadLetterBody {
		m.Header.Set(HeaderOriginalSize, strconv.Itoa(len(body)))
		body = body[:MaxDeadLetterBody]
	}
	m.Data = body
	m.Header.Set(HeaderReason, headerValue(d.Reason, 64))
	m.Header.Set(HeaderDetail, headerValue(d.Detail, 512))
	m.Header.Set(HeaderSource, headerValue(d.Source, 512))
	m.Header.Set(HeaderTime, now.UTC().Format(time.RFC3339Nano))
	return m
}

// PublishAsync sends d to the DEADLETTER stream without waiting.
func (d DeadLetter) PublishAsync(js jetstream.JetStream, now time.Time) (jetstream.PubAckFuture, error) {
	return js.PublishMsgAsync(d.Msg(now))
}

// Publish sends d to the DEADLETTER stream and waits for the acknowledgement.
func (d DeadLetter) Publish(ctx context.Context, js jetstream.JetStream, now time.Time) error {
	_, err := js.PublishMsg(ctx, d.Msg(now))
	return err
}

func headerValue(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == 0xfffd {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\ufffd"))
	return reading.Truncate(s, max)
}
