package decode

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// namePattern is quoted in bad_name details so a device owner can fix the name.
const namePattern = "^[A-Za-z0-9_-]{1,64}$"

// Decode turns one MQTT message into one or more readings (SenML may carry
// several instants). now is the time the message was received; it stamps
// readings that carry no device time, resolves SenML relative times and
// centres the accepted timestamp window. Every returned reading passes
// Validate; every error is an *Error.
//
// Checks run cheapest first: payload size, topic, emptiness, UTF-8, then the
// payload form, whose first byte decides how it is read: '{' a JSON object,
// '[' a SenML pack, anything else a bare number.
func Decode(topic string, payload []byte, now time.Time, lim Limits) ([]reading.Reading, error) {
	rs, err := decode(topic, payload, now, lim)
	if err != nil {
		return nil, err
	}
	return rs, nil
}

func decode(topic string, payload []byte, now time.Time, lim Limits) ([]reading.Reading, *Error) {
	lim = lim.orDefaults()
	if len(payload) > lim.MaxPayload {
		return nil, fail(ReasonTooLarge, "payload is %d bytes, limit is %d", len(payload), lim.MaxPayload)
	}
	t, err := parseTopic(topic)
	if err != nil {
		return nil, err
	}
	body := trimSpace(payload)
	if len(body) == 0 {
		return nil, fail(ReasonEmpty, "payload is empty")
	}
	if !utf8.Valid(body) {
		return nil, fail(ReasonInvalidUTF8, "payload is not valid UTF-8")
	}
	nowMs := now.UnixMilli()
	d := decoder{
		topic: t,
		lim:   lim,
		nowMs: nowMs,
		minMs: nowMs - lim.MaxPast.Milliseconds(),
		maxMs: nowMs + lim.MaxFuture.Milliseconds(),
	}
	s := &scanner{data: body}
	var rs []reading.Reading
	switch body[0] {
	case '{':
		rs, err = d.object(s)
	case '[':
		rs, err = d.senml(s)
	default:
		rs, err = d.bare(s)
	}
	if err != nil {
		return nil, err
	}
	// The readings are valid by construction; checking again is cheap and
	// makes this package the boundary reading.Validate says it is.
	for i := range rs {
		if verr := rs[i].Validate(); verr != nil {
			r := ReasonBadName
			if errors.Is(verr, reading.ErrMetrics) {
				r = ReasonNonFinite
			}
			return nil, fail(r, "%v", verr)
		}
	}
	return rs, nil
}

// decoder holds what one Decode call needs while it reads a payload.
type decoder struct {
	topic Topic
	lim   Limits
	nowMs int64
	// minMs and maxMs bound an accepted device time, in Unix milliseconds.
	minMs, maxMs int64
}

// newReading starts a reading stamped with the receive time.
func (d *decoder) newReading(metrics map[string]float64) reading.Reading {
	return reading.Reading{
		Site:     d.topic.Site,
		Device:   d.topic.Device,
		TS:       d.nowMs,
		Metrics:  metrics,
		Received: d.nowMs,
	}
}

// object decodes {"ts":...,"seq":...,"name":number,...}.
func (d *decoder) object(s *scanner) ([]reading.Reading, *Error) {
	r := d.newReading(nil)
	metrics := make(map[string]float64)
	var seq uint64
	hasSeq := false
	s.pos++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.pos++
	} else {
	members:
		for {
			k, err := s.key()
			if err != nil {
				return nil, err
			}
			switch string(k) {
			case "ts":
				if r.TS, err = d.objectTS(s); err != nil {
					return nil, err
				}
				r.DeviceTime = true
			case "seq":
				if seq, err = seqValue(s); err != nil {
					return nil, err
				}
				hasSeq = true
			default:
				if !reading.ValidName(string(k)) {
					return nil, fail(ReasonBadName, "metric name %s must match %s", quoteBytes(k), namePattern)
				}
				v, err := numberField(s, ReasonWrongType, ReasonNonFinite)
				if err != nil {
					return nil, err.within("metric " + quoteBytes(k))
				}
				metrics[string(k)] = v
				if len(metrics) > d.lim.MaxMetrics {
					return nil, fail(ReasonTooManyMetrics, "object has more than %d metrics", d.lim.MaxMetrics)
				}
			}
			s.ws()
			switch s.peek() {
			case ',':
				s.pos++
			case '}':
				s.pos++
				break members
			default:
				return nil, s.syntax("',' or '}'")
			}
		}
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if len(metrics) == 0 {
		return nil, fail(ReasonEmpty, "object has no metrics, only ts or seq")
	}
	if hasSeq {
		r.Seq = &seq
	}
	r.Metrics = metrics
	return []reading.Reading{r}, nil
}

// objectTS reads "ts": Unix milliseconds as a JSON number (a fraction is
// truncated to the millisecond), or an RFC 3339 string.
func (d *decoder) objectTS(s *scanner) (int64, *Error) {
	if s.peek() == '"' {
		txt, err := s.text()
		if err != nil {
			return 0, err
		}
		t, perr := time.Parse(time.RFC3339Nano, txt)
		if perr != nil {
			return 0, fail(ReasonTimestamp, "ts %s is neither Unix milliseconds nor an RFC 3339 time", quote(txt))
		}
		return d.inWindow("ts", float64(t.UnixMilli()))
	}
	f, err := numberField(s, ReasonTimestamp, ReasonTimestamp)
	if err != nil {
		return 0, err.within("ts")
	}
	return d.inWindow("ts", math.Floor(f))
}

// inWindow checks a device time in Unix milliseconds against
// [now-MaxPast, now+MaxFuture].
func (d *decoder) inWindow(what string, ms float64) (int64, *Error) {
	if ms >= float64(d.minMs) && ms <= float64(d.maxMs) {
		return int64(ms), nil
	}
	detail := fmt.Sprintf("%s %s is outside the accepted window [%s, %s]",
		what, formatMs(ms), formatMs(float64(d.minMs)), formatMs(float64(d.maxMs)))
	if s := ms * 1000; s >= float64(d.minMs) && s <= float64(d.maxMs) {
		detail += "; it looks like Unix seconds, send milliseconds"
	}
	return 0, &Error{Reason: ReasonTimestamp, Detail: detail}
}

// formatMs renders Unix milliseconds as an RFC 3339 time when it is one.
func formatMs(ms float64) string {
	const maxMs = 253402300799999 // 9999-12-31T23:59:59.999Z
	if ms >= -62135596800000 && ms <= maxMs {
		return time.UnixMilli(int64(ms)).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	return strconv.FormatFloat(ms, 'g', -1, 64) + "ms"
}

// seqValue reads "seq": a non-negative integer that fits in uint64, written
// as plain digits.
func seqValue(s *scanner) (uint64, *Error) {
	start := s.pos
	if _, err := numberField(s, ReasonBadSeq, ReasonBadSeq); err != nil {
		return 0, err.within("seq")
	}
	raw := s.data[start:s.pos]
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, fail(ReasonBadSeq, "seq %s is not a non-negative integer below 2^64", quoteBytes(raw))
	}
	return n, nil
}

// numberField reads a value that must be a finite JSON number. A value of
// another JSON type is wrongType; NaN, infinity and overflow are nonFinite;
// anything else is invalid JSON. Callers add which field it was with within,
// so the hot path formats nothing.
func numberField(s *scanner, wrongType, nonFinite Reason) (float64, *Error) {
	c := s.peek()
	if raw, ok := s.number(); ok {
		f, finite := parseFloat(raw)
		if !finite {
			return 0, fail(nonFinite, "value %s overflows float64", quoteBytes(raw))
		}
		return f, nil
	}
	if looksNonFinite(s.data[s.pos:]) {
		return 0, fail(nonFinite, "value is NaN or infinite, want a finite number")
	}
	if c == '"' || c == '{' || c == '[' || s.literal() {
		return 0, fail(wrongType, "value is %s, want a number", kind(c))
	}
	if c == '-' || isDigit(c) {
		return 0, fail(ReasonInvalidJSON, "malformed number at byte %d", s.pos)
	}
	return 0, s.syntax("a number")
}

// bare decodes a payload that is one JSON number, such as 21.5, on a
// .../{metric} topic.
func (d *decoder) bare(s *scanner) ([]reading.Reading, *Error) {
	body := s.data
	raw, ok := s.number()
	isNumber := ok && s.pos == len(body)
	nonFinite := !isNumber && isNonFiniteWord(body)
	if (isNumber || nonFinite) && d.topic.Metric == "" {
		return nil, fail(ReasonWrongType,
			"bare value needs a sensors/{site}/{device}/{metric} topic; on a device topic send a JSON object such as {\"temperature\":21.5}")
	}
	if nonFinite {
		return nil, fail(ReasonNonFinite, "metric %s is %s, want a finite number", quote(d.topic.Metric), quoteBytes(body))
	}
	if isNumber {
		f, finite := parseFloat(raw)
		if !finite {
			return nil, fail(ReasonNonFinite, "metric %s value %s is not a finite float64", quote(d.topic.Metric), quoteBytes(raw))
		}
		return []reading.Reading{d.newReading(map[string]float64{d.topic.Metric: f})}, nil
	}
	// A JSON string, boolean or null is well-formed but not a measurement.
	s.pos = 0
	switch c := body[0]; c {
	case '"':
		if _, _, err := s.str(); err == nil && s.end() == nil {
			return nil, fail(ReasonWrongType, "payload is %s, want a number, a JSON object or a SenML array", kind(c))
		}
	case 't', 'f', 'n':
		if s.literal() && s.end() == nil {
			return nil, fail(ReasonWrongType, "payload is %s, want a number, a JSON object or a SenML array", kind(c))
		}
	}
	return nil, fail(ReasonInvalidJSON, "payload %s is not a JSON number, object or SenML array", quoteBytes(body))
}

// isNonFiniteWord reports whether b is exactly a NaN or infinity spelling
// (nan, inf, infinity in any case, optionally signed), as mosquitto_pub users
// and printf("%f") produce.
func isNonFiniteWord(b []byte) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	for _, w := range [...]string{"nan", "inf", "infinity"} {
		if len(b) == len(w) && equalFoldASCII(b, w) {
			return true
		}
	}
	return false
}
