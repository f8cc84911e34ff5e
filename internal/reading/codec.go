package reading

import (
	"math"
	"slices"
	"strconv"
)

// The TELEMETRY wire codec: Encode writes the compact form ingest publishes,
// Decode reads it back without reflection. Both agree with Marshal and
// Unmarshal (encoding/json) on every input; they are only faster.

// Encode encodes r exactly as Marshal (encoding/json) does, byte for byte,
// in one allocation: it is ingest's hot path (docs/performance.md).
func Encode(r *Reading) ([]byte, error) { return AppendEncoded(nil, r) }

// AppendEncoded appends r, encoded as Encode does, to dst, growing it at
// most once. Names that are not valid names (which ingest's decoder never
// produces) go to encoding/json, which escapes them. On error dst is
// returned unchanged.
func AppendEncoded(dst []byte, r *Reading) ([]byte, error) {
	marshal := func() ([]byte, error) {
		m, err := r.Marshal()
		if err != nil {
			return dst, err
		}
		return append(dst, m...), nil
	}
	if !ValidName(r.Site) || !ValidName(r.Device) {
		return marshal()
	}
	var stack [16]string
	names := stack[:0]
	size := 64 + len(r.Site) + len(r.Device)
	for name := range r.Metrics {
		if !ValidName(name) {
			return marshal()
		}
		names = append(names, name)
		size += len(name) + 28
	}
	slices.Sort(names)

	b := slices.Grow(dst, size)
	b = append(b, `{"site":"`...)
	b = append(b, r.Site...)
	b = append(b, `","device":"`...)
	b = append(b, r.Device...)
	b = append(b, `","ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	if r.Seq != nil {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, *r.Seq, 10)
	}
	b = append(b, `,"metrics":`...)
	if r.Metrics == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '{')
		for i, name := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, `":`...)
			var ok bool
			if b, ok = appendJSONFloat(b, r.Metrics[name]); !ok {
				return marshal() // NaN or Inf: encoding/json's error
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"rx":`...)
	b = strconv.AppendInt(b, r.Received, 10)
	if r.DeviceTime {
		b = append(b, `,"dt":true`...)
	}
	if len(r.Units) > 0 {
		units := make([]string, 0, len(r.Units))
		for name, u := range r.Units {
			if !ValidName(name) || !ValidUnit(u) {
				return marshal() // escapes what needs escaping
			}
			units = append(units, name)
		}
		slices.Sort(units)
		b = append(b, `,"units":{`...)
		for i, name := range units {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, `":"`...)
			b = append(b, r.Units[name]...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	return b, nil
}

// appendJSONFloat appends f as encoding/json writes a float64: the shortest
// representation, in exponent form below 1e-6 and from 1e21, with a
// one-digit negative exponent written without its leading zero.
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9, as encoding/json does.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// Decode decodes and validates a reading from TELEMETRY, as Unmarshal does.
// The compact form Encode writes (keys in order, names without escapes) is
// read without reflection: the processor's hot path (docs/performance.md).
// Anything else (spaces, escapes, other key spellings, null, numbers
// encoding/json would refuse) goes to Unmarshal, so what is accepted, and
// how, is Unmarshal's.
func Decode(data []byte) (Reading, error) {
	if r, ok := parseCompact(data); ok {
		return r, r.Validate()
	}
	return Unmarshal(data)
}

// parseCompact parses {"site":"…","device":"…","ts":…[,"seq":…],
// "metrics":{"…":…,…},"rx":…[,"dt":true|false][,"units":{"…":"…",…}]}; ok is false at the first
// byte it does not expect.
func parseCompact(data []byte) (r Reading, ok bool) {
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
	if p.lit(`,"units":{`) {
		r.Units = make(map[string]string, 2)
		for first := true; !p.lit("}"); first = false {
			if !first && !p.lit(",") {
				return r, false
			}
			var name, u string
			if !p.name(&name) || !p.lit(":") || !p.unit(&u) {
				return r, false
			}
			if _, dup := r.Units[name]; dup {
				return r, false
			}
			r.Units[name] = u
		}
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

// unit consumes a quoted string of unit bytes (ValidUnit's, no escapes).
func (p *compact) unit(dst *string) bool {
	if len(p.b) < 2 || p.b[0] != '"' {
		return false
	}
	for i := 1; i < len(p.b); i++ {
		switch c := p.b[i]; {
		case c == '"':
			*dst = string(p.b[1:i])
			p.b = p.b[i+1:]
			return true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '%', c == '/', c == '.', c == '_', c == '-':
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
