package decode

import (
	"fmt"
	"math"
	"strings"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// SenML (RFC 8428) constants.
const (
	// senmlVersion is the version RFC 8428 defines. A pack announcing a later
	// one must not be used (RFC 8428 section 4.4); earlier ones (the RFC's own
	// example says 5) read the same.
	senmlVersion = 10
	// senmlRelative: times below 2^28 seconds are relative to now, negative
	// ones in the past (RFC 8428 section 4.5.3).
	senmlRelative = 1 << 28
)

// senmlBase holds the base fields in force; each applies from the record
// that sets it to the next record that sets it again.
type senmlBase struct {
	name, unit       string
	time, value, sum float64
}

// senmlRecord is one record's fields, before base fields are applied.
type senmlRecord struct {
	bn, n, bu, u        string
	bt, bv, bs, t, v, s float64
	hasBN, hasBT, hasBV bool
	hasBU, hasU         bool
	hasBS, hasV, hasS   bool
	// regular is set by a field (n, u, t, ut) that only makes sense with a value.
	regular bool
}

// instant identifies one reading of a pack: records at the same resolved
// time, and of the same kind of time, share a reading.
type instant struct {
	ts     int64
	device bool
}

// senmlSource is where a metric of a reading came from: the record's
// resolved name, base name and name apart.
type senmlSource struct {
	reading int
	metric  string
	bn, n   string
}

// senml decodes a SenML pack into one reading per distinct resolved time, in
// the order the times first appear. Only numeric values are accepted. A
// record repeating a resolved name at one instant replaces the earlier
// value; two different names that end in the same metric at one instant
// are refused (ReasonNameCollision).
func (d *decoder) senml(s *scanner) ([]reading.Reading, *Error) {
	var (
		base  senmlBase
		out   []reading.Reading
		keys  []instant
		index map[instant]int // built once a pack has many instants
		// sources of the metrics so far, newest last; small packs stay
		// in srcBuf.
		srcBuf  [8]senmlSource
		sources = srcBuf[:0]
	)
	s.pos++ // '['
	s.ws()
	if s.peek() == ']' {
		s.pos++
		if err := s.end(); err != nil {
			return nil, err
		}
		return nil, fail(ReasonEmpty, "SenML pack has no records")
	}
	for i := 0; ; i++ {
		s.ws()
		if c := s.peek(); c != '{' {
			if c == '[' || c == '"' || c == '-' || isDigit(c) || s.literal() {
				return nil, fail(ReasonSenML, "SenML record %d is %s, want an object", i, kind(c))
			}
			return nil, s.syntax("a SenML record object")
		}
		rec, err := readRecord(s)
		if err != nil {
			return nil, err.within(fmt.Sprintf("SenML record %d", i))
		}
		if rec.hasBN {
			base.name = rec.bn
		}
		if rec.hasBT {
			base.time = rec.bt
		}
		if rec.hasBV {
			base.value = rec.bv
		}
		if rec.hasBS {
			base.sum = rec.bs
		}
		if rec.hasBU {
			base.unit = rec.bu
		}
		if rec.hasV || rec.hasS {
			name, value, at, err := d.resolve(&base, &rec)
			if err != nil {
				return nil, err.within(fmt.Sprintf("SenML record %d", i))
			}
			j := -1
			if index != nil {
				if k, ok := index[at]; ok {
					j = k
				}
			} else {
				for k := len(keys) - 1; k >= 0; k-- {
					if keys[k] == at {
						j = k
						break
					}
				}
			}
			if j < 0 {
				j = len(out)
				r := d.newReading(make(map[string]float64))
				r.TS, r.DeviceTime = at.ts, at.device
				out = append(out, r)
				keys = append(keys, at)
				if index != nil {
					index[at] = j
				} else if len(keys) > 8 {
					index = make(map[instant]int, 2*len(keys))
					for k, key := range keys {
						index[key] = k
					}
				}
			}
			m := out[j].Metrics
			if _, again := m[name]; again {
				for k := len(sources) - 1; k >= 0; k-- {
					if src := sources[k]; src.reading == j && src.metric == name {
						if !sameName(src.bn, src.n, base.name, rec.n) {
							return nil, fail(ReasonNameCollision, "name %s and %s at one instant are both metric %s",
								quote(base.name+rec.n), quote(src.bn+src.n), quote(name)).within(fmt.Sprintf("SenML record %d", i))
						}
						break
					}
				}
			}
			sources = append(sources, senmlSource{reading: j, metric: name, bn: base.name, n: rec.n})
			m[name] = value
			// A unit is carried when valid (reading.ValidUnit) and dropped
			// otherwise: it is shown, never computed with, so a device's odd
			// unit does not cost its reading.
			unit := base.unit
			if rec.hasU {
				unit = rec.u
			}
			if reading.ValidUnit(unit) {
				if out[j].Units == nil {
					out[j].Units = map[string]string{}
				}
				out[j].Units[name] = unit
			} else {
				delete(out[j].Units, name)
			}
			if len(m) > d.lim.MaxMetrics {
				return nil, fail(ReasonTooManyMetrics, "SenML pack has more than %d metrics at one instant", d.lim.MaxMetrics)
			}
		} else if rec.regular {
			// RFC 8428 section 4.2: a Value is required unless there is a Sum.
			// A record of base fields only (section 5.1.7) is fine.
			return nil, fail(ReasonSenML, "SenML record %d has no numeric value (v or s)", i)
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.pos++
			continue
		case ']':
			s.pos++
		default:
			return nil, s.syntax("',' or ']'")
		}
		break
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fail(ReasonEmpty, "SenML pack has no values")
	}
	return out, nil
}

// resolve applies the base fields to a record that has a value and returns
// its metric name, value and instant.
func (d *decoder) resolve(base *senmlBase, rec *senmlRecord) (string, float64, instant, *Error) {
	name := metricName(base.name, rec.n)
	if !reading.ValidName(name) {
		return "", 0, instant{}, fail(ReasonBadName, "name %s: its last ':'- or '/'-separated segment must match %s",
			quote(base.name+rec.n), namePattern)
	}
	value := base.value + rec.v
	if !rec.hasV {
		value = base.sum + rec.s
	}
	if math.IsInf(value, 0) || math.IsNaN(value) {
		return "", 0, instant{}, fail(ReasonNonFinite, "base value plus value overflows float64")
	}
	at := instant{device: true}
	sec := base.time + rec.t
	var ms float64
	if sec < senmlRelative {
		// A relative time is resolved with ingest's clock, so it is not the
		// device's own time: a redelivery would resolve it differently, and
		// the reading's identity must not pretend otherwise.
		ms = float64(d.nowMs) + math.Round(sec*1000)
		at.device = false
	} else {
		ms = math.Round(sec * 1000)
	}
	ts, err := d.inWindow("time", ms)
	if err != nil {
		return "", 0, instant{}, err
	}
	at.ts = ts
	return name, value, at, nil
}

// sameName reports whether bn1+n1 == bn2+n2, without concatenating.
func sameName(bn1, n1, bn2, n2 string) bool {
	if len(bn1)+len(n1) != len(bn2)+len(n2) {
		return false
	}
	if len(bn1) > len(bn2) {
		bn1, n1, bn2, n2 = bn2, n2, bn1, n1
	}
	// bn1 is the shorter: bn2 = bn1 + the start of n1, and n2 the rest of n1.
	k := len(bn2) - len(bn1)
	return bn2[:len(bn1)] == bn1 && bn2[len(bn1):] == n1[:k] && n1[k:] == n2
}

// metricName is the last ':'- or '/'-separated segment of bn+n, computed
// without concatenating unless both halves contribute.
func metricName(bn, n string) string {
	if i := strings.LastIndexAny(n, ":/"); i >= 0 {
		return n[i+1:]
	}
	if i := strings.LastIndexAny(bn, ":/"); i >= 0 {
		bn = bn[i+1:]
	}
	switch {
	case bn == "":
		return n
	case n == "":
		return bn
	}
	return bn + n
}

// readRecord reads one record object, checking each known field's JSON type.
func readRecord(s *scanner) (senmlRecord, *Error) {
	var rec senmlRecord
	s.pos++ // '{'
	s.ws()
	if s.peek() == '}' {
		s.pos++
		return rec, nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return rec, err
		}
		switch string(k) {
		case "bn":
			rec.bn, err = stringField(s)
			rec.hasBN = true
		case "n":
			rec.n, err = stringField(s)
			rec.regular = true
		case "bu":
			rec.bu, err = stringField(s)
			rec.hasBU = true
		case "u":
			rec.u, err = stringField(s)
			rec.hasU = true
			rec.regular = true
		case "bt":
			rec.bt, err = numberField(s, ReasonTimestamp, ReasonTimestamp)
			rec.hasBT = true
		case "t":
			rec.t, err = numberField(s, ReasonTimestamp, ReasonTimestamp)
			rec.regular = true
		case "bv":
			rec.bv, err = numberField(s, ReasonSenML, ReasonNonFinite)
			rec.hasBV = true
		case "v":
			rec.v, err = numberField(s, ReasonWrongType, ReasonNonFinite)
			rec.hasV = true
		case "bs":
			rec.bs, err = numberField(s, ReasonSenML, ReasonNonFinite)
			rec.hasBS = true
		case "s":
			rec.s, err = numberField(s, ReasonWrongType, ReasonNonFinite)
			rec.hasS = true
		case "ut":
			_, err = numberField(s, ReasonSenML, ReasonSenML)
			rec.regular = true
		case "bver":
			var v float64
			if v, err = numberField(s, ReasonSenML, ReasonSenML); err == nil {
				switch {
				case v < 1 || v != math.Trunc(v):
					err = fail(ReasonSenML, "value %v is not a positive integer", v)
				case v > senmlVersion:
					err = fail(ReasonSenML, "SenML version %v is newer than %d, which this decoder implements", v, senmlVersion)
				}
			}
		case "vs", "vb", "vd":
			err = fail(ReasonWrongType, "only numeric SenML values (v or s) are accepted")
		default:
			if len(k) > 0 && k[len(k)-1] == '_' {
				// RFC 8428 section 4.4: must-understand fields end in '_'.
				err = fail(ReasonSenML, "unknown must-understand field")
			} else {
				// Other unknown fields must be ignored (RFC 8428 section 4.4).
				err = s.skipValue()
			}
		}
		if err != nil {
			return rec, err.within("field " + quoteBytes(k))
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return rec, nil
		default:
			return rec, s.syntax("',' or '}'")
		}
	}
}

// stringField reads a value that must be a JSON string.
func stringField(s *scanner) (string, *Error) {
	if s.peek() != '"' {
		return "", notString(s)
	}
	return s.text()
}

func notString(s *scanner) *Error {
	c := s.peek()
	if c == '{' || c == '[' || c == '-' || isDigit(c) || s.literal() {
		return fail(ReasonSenML, "value is %s, want a string", kind(c))
	}
	return s.syntax("a string")
}
