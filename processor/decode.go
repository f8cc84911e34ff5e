package main

import (
	"strconv"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// decodeReading decodes and validates a reading from TELEMETRY, as
// reading.Unmarshal does. Ingest writes readings in one compact form (its
// marshalReading: keys in order, names without escapes); that form is read
// here without reflection, which was a fifth of the processor's CPU at
// 5,000 msgs/s. Anything else (spaces, escapes, other key spellings, null,
// numbers encoding/json would refuse) goes to reading.Unmarshal, so what
// is accepted, and how, does not change (decode_test.go fuzzes that).
func decodeReading(data []byte) (reading.Reading, error) {
	if r, ok := parseCompact(data); ok {
		return r, r.Validate()
	}
	return reading.Unmarshal(data)
}

// parseCompact parses {"site":"…","device":"…","ts":…[,"seq":…],
// "metrics":{"…":…,…},"rx":…[,"dt":true|false]}; ok is false at the first
// byte it does not expect.
func parseCompact(data []byte) (r reading.Reading, ok bool) {
	p := compact{b: data}
	if !p.lit(`{"site":`) || !p.name(&r.Site) || !p.lit(`,"device":`) || !p.name(&r.Device) ||
		!p.lit(`,"ts":`) || !p.int(&r.TS) {
		return r, false
	}
	if p.lit(`,"seq":`) {
		var seq uint64
		if !p.uint(&seq) {
			return r, false
		}
		r.Seq = &seq
	}
	if !p.lit(`,"metrics":{`) {
		return r, false
	}
	r.Metrics = make(map[string]float64, 4)
	for first := true; !p.lit("}"); first = false {
		if !first && !p.lit(",") {
			return r, false
		}
		var name string
		var v float64
		if !p.name(&name) || !p.lit(":") || !p.float(&v) {
			return r, false
		}
		if _, dup := r.Metrics[name]; dup {
			return r, false
		}
		r.Metrics[name] = v
	}
	if !p.lit(`,"rx":`) || !p.int(&r.Received) {
		return r, false
	}
	switch {
	case p.lit(`,"dt":true`):
		r.DeviceTime = true
	case p.lit(`,"dt":false`):
	}
	return r, p.lit("}") && len(p.b) == 0
}

// compact consumes b from the front.
type compact struct{ b []byte }

// lit consumes s if b starts with it.
func (p *compact) lit(s string) bool {
	if len(p.b) < len(s) || string(p.b[:len(s)]) != s {
		return false
	}
	p.b = p.b[len(s):]
	return true
}

// name consumes a quoted string of name bytes ([A-Za-z0-9_-], no escapes).
func (p *compact) name(dst *string) bool {
	if len(p.b) < 2 || p.b[0] != '"' {
		return false
	}
	for i := 1; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '"':
			*dst = string(p.b[1:i])
			p.b = p.b[i+1:]
			return true
		default:
			return false
		}
	}
	return false
}

// number consumes a JSON number and returns its text; integer restricts it
// to -?(0|[1-9][0-9]*).
func (p *compact) number(integer bool) ([]byte, bool) {
	b, i := p.b, 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	if n := digits(); n == 0 || (n > 1 && b[start] == '0') {
		return nil, false
	}
	if !integer {
		if i < len(b) && b[i] == '.' {
			i++
			if digits() == 0 {
				return nil, false
			}
		}
		if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
			i++
			if i < len(b) && (b[i] == '+' || b[i] == '-') {
				i++
			}
			if digits() == 0 {
				return nil, false
			}
		}
	}
	p.b = b[i:]
	return b[:i], true
}

func (p *compact) int(dst *int64) bool {
	s, ok := p.number(true)
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(string(s), 10, 64)
	*dst = v
	return err == nil
}

func (p *compact) uint(dst *uint64) bool {
	if len(p.b) > 0 && p.b[0] == '-' {
		return false
	}
	s, ok := p.number(true)
	if !ok {
		return false
	}
	v, err := strconv.ParseUint(string(s), 10, 64)
	*dst = v
	return err == nil
}

func (p *compact) float(dst *float64) bool {
	s, ok := p.number(false)
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(s), 64)
	*dst = v
	return err == nil
}
