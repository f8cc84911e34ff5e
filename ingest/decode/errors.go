package decode

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Reason is a short, stable code saying why a message was rejected. Ingest
// uses it as a Prometheus label value and as the dead-letter header, so the
// set is closed (see Reasons) and a value never changes once released.
type Reason string

// Rejection reasons.
const (
	// ReasonBadTopic: the topic is not sensors/{site}/{device}[/{metric}]
	// (wrong prefix, wrong number of levels, empty level, invalid UTF-8).
	ReasonBadTopic Reason = "bad_topic"
	// ReasonBadName: a site, device or metric name fails reading.ValidName.
	ReasonBadName Reason = "bad_name"
	// ReasonTooLarge: the payload is longer than Limits.MaxPayload.
	ReasonTooLarge Reason = "too_large"
	// ReasonEmpty: the payload is empty or whitespace, or carries no metric.
	ReasonEmpty Reason = "empty"
	// ReasonInvalidJSON: the payload is neither a JSON number, object nor array,
	// or is malformed JSON.
	ReasonInvalidJSON Reason = "invalid_json"
	// ReasonWrongType: a value is not a JSON number (string, bool, null, array,
	// object, SenML vs/vb/vd), or a bare number arrived on a device topic.
	ReasonWrongType Reason = "wrong_type"
	// ReasonNonFinite: a value is NaN, an infinity, or overflows float64.
	ReasonNonFinite Reason = "non_finite"
	// ReasonTimestamp: a device time is unparseable or outside
	// [now-MaxPast, now+MaxFuture].
	ReasonTimestamp Reason = "bad_timestamp"
	// ReasonTooManyMetrics: a reading would carry more than Limits.MaxMetrics.
	ReasonTooManyMetrics Reason = "too_many_metrics"
	// ReasonBadSeq: "seq" is not a non-negative integer that fits in uint64.
	ReasonBadSeq Reason = "bad_seq"
	// ReasonInvalidUTF8: the payload is not valid UTF-8 (JSON must be).
	ReasonInvalidUTF8 Reason = "invalid_utf8"
	// ReasonSenML: a SenML pack breaks RFC 8428 (a record that is not an
	// object, a field of the wrong type, an unsupported version, an unknown
	// must-understand field, a named record without a value).
	ReasonSenML Reason = "bad_senml"
	// ReasonNameCollision: two records of a SenML pack at one instant have
	// different names that end in the same metric (urn:…:a:temp and
	// urn:…:b:temp): one value would silently replace the other.
	ReasonNameCollision Reason = "name_collision"
	// ReasonInvalid is what ReasonOf returns for an error that did not come
	// from this package; Decode itself never returns it.
	ReasonInvalid Reason = "invalid"
)

// Reasons lists every Reason Decode and ParseTopic return, so metrics can be
// registered with all label values up front.
func Reasons() []Reason {
	return []Reason{
		ReasonBadTopic, ReasonBadName, ReasonTooLarge, ReasonEmpty,
		ReasonInvalidJSON, ReasonWrongType, ReasonNonFinite, ReasonTimestamp,
		ReasonTooManyMetrics, ReasonBadSeq, ReasonInvalidUTF8, ReasonSenML, ReasonNameCollision,
	}
}

// Error is every rejection from Decode and ParseTopic. Detail is for humans
// and logs; untrusted text in it is truncated and quoted, so it is safe to log
// and to put in a header.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Detail }

// ReasonOf returns the Reason of the first *Error in err's chain, "" for a nil
// error and ReasonInvalid for any other error.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonInvalid
}

func fail(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// within prefixes the detail with where in the payload the fault is.
func (e *Error) within(context string) *Error {
	e.Detail = context + ": " + e.Detail
	return e
}

// maxQuoted bounds how much untrusted text a Detail repeats: enough to
// recognise a name (names are at most 64 bytes), never a payload.
const maxQuoted = 80

// quote truncates and quotes untrusted text for a Detail.
func quote(s string) string {
	return strconv.Quote(reading.Truncate(s, maxQuoted))
}

// quoteBytes is quote for a slice of the payload, without first copying
// all of it.
func quoteBytes(b []byte) string {
	if len(b) > 4*maxQuoted {
		b = b[:4*maxQuoted]
	}
	return quote(string(b))
}
