package decode

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// testNow is the receive time of every test message: 2024-11-25T18:40:00Z.
var testNow = time.UnixMilli(1732560000000).UTC()

const nowMs = 1732560000000

const (
	devTopic    = "sensors/lab/t1"
	metricTopic = "sensors/lab/t1/temperature"
)

// rd builds the reading a test expects from site lab, device t1.
func rd(ts int64, deviceTime bool, seq *uint64, metrics map[string]float64) reading.Reading {
	return reading.Reading{
		Site: "lab", Device: "t1", TS: ts, Seq: seq, Metrics: metrics,
		Received: nowMs, DeviceTime: deviceTime,
	}
}

// now1 is a reading stamped with the receive time.
func now1(metrics map[string]float64) []reading.Reading {
	return []reading.Reading{rd(nowMs, false, nil, metrics)}
}

func u64(v uint64) *uint64 { return &v }

type m = map[string]float64

// decodeCase is one Decode call: either want (readings) or reason is set.
type decodeCase struct {
	name    string
	topic   string // devTopic when empty
	payload string
	lim     Limits // DefaultLimits when zero
	want    []reading.Reading
	reason  Reason
	detail  string // a substring the error detail must contain
}

const week = 7 * 24 * 3600 * 1000

func objectCases() []decodeCase {
	name64 := strings.Repeat("n", 64)
	name65 := strings.Repeat("n", 65)
	return []decodeCase{
		{name: "spec example", payload: `{"ts":1732560000123,"temperature":21.5,"seq":7}`,
			want: []reading.Reading{rd(1732560000123, true, u64(7), m{"temperature": 21.5})}},
		{name: "no ts", payload: `{"temperature":21.5,"humidity":40}`,
			want: now1(m{"temperature": 21.5, "humidity": 40})},
		{name: "whitespace everywhere", payload: " \r\n\t{ \"a\" :\n1 , \"b\"\t: -2 }\n ",
			want: now1(m{"a": 1, "b": -2})},
		{name: "number forms", payload: `{"a":-0.0,"b":1E+2,"c":-1.5e-3,"d":0,"e":1e-400,"f":12345678901234567890}`,
			want: now1(m{"a": 0, "b": 100, "c": -0.0015, "d": 0, "e": 0, "f": 12345678901234567890})},
		{name: "duplicate key last wins", payload: `{"a":1,"a":2}`, want: now1(m{"a": 2})},
		{name: "escaped key", payload: `{"\u0074emp":1}`, want: now1(m{"temp": 1})},
		{name: "escaped ts key", payload: `{"t\u0073":1732560000000,"x":1}`,
			want: []reading.Reading{rd(nowMs, true, nil, m{"x": 1})}},
		{name: "keys are case sensitive", payload: `{"TS":1,"Seq":2}`, want: now1(m{"TS": 1, "Seq": 2})},
		{name: "metric name 64", payload: `{"` + name64 + `":1}`, want: now1(m{name64: 1})},
		{name: "metric topic object ignores topic metric", topic: metricTopic, payload: `{"humidity":40}`,
			want: now1(m{"humidity": 40})},

		// ts
		{name: "ts float truncated to ms", payload: `{"ts":1732560000123.9,"a":1}`,
			want: []reading.Reading{rd(1732560000123, true, nil, m{"a": 1})}},
		{name: "ts exponent", payload: `{"ts":1.7325600001e12,"a":1}`,
			want: []reading.Reading{rd(1732560000100, true, nil, m{"a": 1})}},
		{name: "ts RFC 3339", payload: `{"ts":"2024-11-25T18:39:00Z","a":1}`,
			want: []reading.Reading{rd(1732559940000, true, nil, m{"a": 1})}},
		{name: "ts RFC 3339 offset fraction", payload: `{"ts":"2024-11-25T19:39:00.5+01:00","a":1}`,
			want: []reading.Reading{rd(1732559940500, true, nil, m{"a": 1})}},
		{name: "ts RFC 3339 escaped", payload: `{"ts":"2024-11-25T18:39:00\u005a","a":1}`,
			want: []reading.Reading{rd(1732559940000, true, nil, m{"a": 1})}},
		{name: "ts at past edge", payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs-week),
			want: []reading.Reading{rd(nowMs-week, true, nil, m{"a": 1})}},
		{name: "ts before past edge", payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs-week-1), reason: ReasonTimestamp},
		{name: "ts at future edge", payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs+300000),
			want: []reading.Reading{rd(nowMs+300000, true, nil, m{"a": 1})}},
		{name: "ts after future edge", payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs+300001), reason: ReasonTimestamp},
		{name: "ts custom window edges", lim: Limits{MaxPast: time.Hour, MaxFuture: time.Second},
			payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs-3600000),
			want:    []reading.Reading{rd(nowMs-3600000, true, nil, m{"a": 1})}},
		{name: "ts custom window past", lim: Limits{MaxPast: time.Hour, MaxFuture: time.Second},
			payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs-3600001), reason: ReasonTimestamp},
		{name: "ts custom window future", lim: Limits{MaxPast: time.Hour, MaxFuture: time.Second},
			payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs+1001), reason: ReasonTimestamp},
		{name: "ts in seconds", payload: `{"ts":1732560000,"a":1}`, reason: ReasonTimestamp, detail: "Unix seconds"},
		{name: "ts negative", payload: `{"ts":-1,"a":1}`, reason: ReasonTimestamp},
		{name: "ts overflow", payload: `{"ts":1e400,"a":1}`, reason: ReasonTimestamp},
		{name: "ts huge", payload: `{"ts":1e300,"a":1}`, reason: ReasonTimestamp},
		{name: "ts NaN", payload: `{"ts":NaN,"a":1}`, reason: ReasonTimestamp},
		{name: "ts not a time", payload: `{"ts":"yesterday","a":1}`, reason: ReasonTimestamp},
		{name: "ts RFC 3339 without zone", payload: `{"ts":"2024-11-25T18:39:00","a":1}`, reason: ReasonTimestamp},
		{name: "ts RFC 3339 out of window", payload: `{"ts":"2020-01-01T00:00:00Z","a":1}`, reason: ReasonTimestamp},
		{name: "ts null", payload: `{"ts":null,"a":1}`, reason: ReasonTimestamp},
		{name: "ts bool", payload: `{"ts":true,"a":1}`, reason: ReasonTimestamp},
		{name: "ts object", payload: `{"ts":{"s":1},"a":1}`, reason: ReasonTimestamp},
		{name: "ts array", payload: `{"ts":[1],"a":1}`, reason: ReasonTimestamp},

		// seq
		{name: "seq zero", payload: `{"seq":0,"a":1}`, want: []reading.Reading{rd(nowMs, false, u64(0), m{"a": 1})}},
		{name: "seq max", payload: `{"seq":18446744073709551615,"a":1}`,
			want: []reading.Reading{rd(nowMs, false, u64(18446744073709551615), m{"a": 1})}},
		{name: "seq duplicate last wins", payload: `{"seq":1,"a":1,"seq":2}`,
			want: []reading.Reading{rd(nowMs, false, u64(2), m{"a": 1})}},
		{name: "seq overflow", payload: `{"seq":18446744073709551616,"a":1}`, reason: ReasonBadSeq},
		{name: "seq negative", payload: `{"seq":-1,"a":1}`, reason: ReasonBadSeq},
		{name: "seq fraction", payload: `{"seq":1.5,"a":1}`, reason: ReasonBadSeq},
		{name: "seq exponent", payload: `{"seq":1e3,"a":1}`, reason: ReasonBadSeq},
		{name: "seq string", payload: `{"seq":"7","a":1}`, reason: ReasonBadSeq},
		{name: "seq null", payload: `{"seq":null,"a":1}`, reason: ReasonBadSeq},
		{name: "seq huge", payload: `{"seq":1e400,"a":1}`, reason: ReasonBadSeq},

		// names
		{name: "metric name 65", payload: `{"` + name65 + `":1}`, reason: ReasonBadName},
		{name: "metric name dot dot", payload: `{"../x":1}`, reason: ReasonBadName},
		{name: "metric name dot", payload: `{"a.b":1}`, reason: ReasonBadName},
		{name: "metric name star", payload: `{"a*":1}`, reason: ReasonBadName},
		{name: "metric name gt", payload: `{">":1}`, reason: ReasonBadName},
		{name: "metric name space", payload: `{"a b":1}`, reason: ReasonBadName},
		{name: "metric name unicode", payload: `{"température":1}`, reason: ReasonBadName},
		{name: "metric name escaped NUL", payload: `{"a\u0000":1}`, reason: ReasonBadName},
		{name: "metric name escaped newline", payload: `{"a\n":1}`, reason: ReasonBadName},
		{name: "metric name empty", payload: `{"":1}`, reason: ReasonBadName},
		{name: "metric name wildcard", payload: `{"+":1}`, reason: ReasonBadName},

		// values
		{name: "value string", payload: `{"a":"21.5"}`, reason: ReasonWrongType},
		{name: "value true", payload: `{"a":true}`, reason: ReasonWrongType},
		{name: "value false", payload: `{"a":false}`, reason: ReasonWrongType},
		{name: "value null", payload: `{"a":null}`, reason: ReasonWrongType},
		{name: "value array", payload: `{"a":[1]}`, reason: ReasonWrongType},
		{name: "value object", payload: `{"a":{"b":1}}`, reason: ReasonWrongType},
		{name: "value deeply nested", payload: `{"a":` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`,
			reason: ReasonWrongType},
		{name: "value NaN", payload: `{"a":NaN}`, reason: ReasonNonFinite},
		{name: "value Infinity", payload: `{"a":Infinity}`, reason: ReasonNonFinite},
		{name: "value -Infinity", payload: `{"a":-Infinity}`, reason: ReasonNonFinite},
		{name: "value overflow", payload: `{"a":1e400}`, reason: ReasonNonFinite},
		{name: "value negative overflow", payload: `{"a":-1e400}`, reason: ReasonNonFinite},

		// JSON syntax
		{name: "trailing comma", payload: `{"a":1,}`, reason: ReasonInvalidJSON},
		{name: "unterminated", payload: `{"a":1`, reason: ReasonInvalidJSON},
		{name: "unterminated key", payload: `{"a`, reason: ReasonInvalidJSON},
		{name: "missing colon", payload: `{"a" 1}`, reason: ReasonInvalidJSON},
		{name: "missing comma", payload: `{"a":1 "b":2}`, reason: ReasonInvalidJSON},
		{name: "unquoted key", payload: `{a:1}`, reason: ReasonInvalidJSON},
		{name: "single quotes", payload: `{'a':1}`, reason: ReasonInvalidJSON},
		{name: "leading zero", payload: `{"a":01}`, reason: ReasonInvalidJSON},
		{name: "bare dot", payload: `{"a":1.}`, reason: ReasonInvalidJSON},
		{name: "leading dot", payload: `{"a":.5}`, reason: ReasonInvalidJSON},
		{name: "plus sign", payload: `{"a":+1}`, reason: ReasonInvalidJSON},
		{name: "hex", payload: `{"a":0x10}`, reason: ReasonInvalidJSON},
		{name: "underscore", payload: `{"a":1_000}`, reason: ReasonInvalidJSON},
		{name: "exponent without digits", payload: `{"a":1e}`, reason: ReasonInvalidJSON},
		{name: "trailing data", payload: `{"a":1}x`, reason: ReasonInvalidJSON},
		{name: "two objects", payload: `{"a":1}{"b":2}`, reason: ReasonInvalidJSON},
		{name: "bad escape in key", payload: `{"a\q":1}`, reason: ReasonInvalidJSON},
		{name: "short unicode escape in key", payload: `{"a\u12":1}`, reason: ReasonInvalidJSON},
		{name: "raw control char in key", payload: "{\"a\x01\":1}", reason: ReasonInvalidJSON},
		{name: "raw unit separator in key", payload: "{\"a\x1f\":1}", reason: ReasonInvalidJSON},
		{name: "raw DEL in key is JSON", payload: "{\"a\x7f\":1}", reason: ReasonBadName},
		{name: "not a key", payload: `{1:1}`, reason: ReasonInvalidJSON},
		{name: "unknown literal", payload: `{"a":nul}`, reason: ReasonInvalidJSON},

		// empty and limits
		{name: "empty object", payload: `{}`, reason: ReasonEmpty},
		{name: "only ts", payload: `{"ts":1732560000000}`, reason: ReasonEmpty},
		{name: "only seq", payload: `{"seq":1}`, reason: ReasonEmpty},
		{name: "metrics at limit", lim: Limits{MaxMetrics: 2}, payload: `{"a":1,"b":2,"a":3}`,
			want: now1(m{"a": 3, "b": 2})},
		{name: "metrics over limit", lim: Limits{MaxMetrics: 2}, payload: `{"a":1,"b":2,"c":3}`,
			reason: ReasonTooManyMetrics},
		{name: "ts and seq do not count as metrics", lim: Limits{MaxMetrics: 1},
			payload: `{"ts":1732560000000,"seq":3,"a":1}`,
			want:    []reading.Reading{rd(nowMs, true, u64(3), m{"a": 1})}},
	}
}

func bareCases() []decodeCase {
	return []decodeCase{
		{name: "bare decimal", topic: metricTopic, payload: `21.5`, want: now1(m{"temperature": 21.5})},
		{name: "bare negative", topic: metricTopic, payload: `-3`, want: now1(m{"temperature": -3})},
		{name: "bare exponent", topic: metricTopic, payload: `1e3`, want: now1(m{"temperature": 1000})},
		{name: "bare zero", topic: metricTopic, payload: `0`, want: now1(m{"temperature": 0})},
		{name: "bare whitespace", topic: metricTopic, payload: " \t42\r\n", want: now1(m{"temperature": 42})},
		{name: "bare NaN", topic: metricTopic, payload: `NaN`, reason: ReasonNonFinite},
		{name: "bare nan", topic: metricTopic, payload: `nan`, reason: ReasonNonFinite},
		{name: "bare Inf", topic: metricTopic, payload: `Inf`, reason: ReasonNonFinite},
		{name: "bare +Inf", topic: metricTopic, payload: `+Inf`, reason: ReasonNonFinite},
		{name: "bare -inf", topic: metricTopic, payload: `-inf`, reason: ReasonNonFinite},
		{name: "bare Infinity", topic: metricTopic, payload: `Infinity`, reason: ReasonNonFinite},
		{name: "bare overflow", topic: metricTopic, payload: `1e400`, reason: ReasonNonFinite},
		{name: "bare hex", topic: metricTopic, payload: `0x10`, reason: ReasonInvalidJSON},
		{name: "bare hex float", topic: metricTopic, payload: `0x1p-2`, reason: ReasonInvalidJSON},
		{name: "bare underscore", topic: metricTopic, payload: `1_000`, reason: ReasonInvalidJSON},
		{name: "bare plus", topic: metricTopic, payload: `+1`, reason: ReasonInvalidJSON},
		{name: "bare leading dot", topic: metricTopic, payload: `.5`, reason: ReasonInvalidJSON},
		{name: "bare trailing dot", topic: metricTopic, payload: `1.`, reason: ReasonInvalidJSON},
		{name: "bare leading zero", topic: metricTopic, payload: `01`, reason: ReasonInvalidJSON},
		{name: "bare comma decimal", topic: metricTopic, payload: `21,5`, reason: ReasonInvalidJSON},
		{name: "bare with unit", topic: metricTopic, payload: `21.5 C`, reason: ReasonInvalidJSON},
		{name: "bare two numbers", topic: metricTopic, payload: `1 2`, reason: ReasonInvalidJSON},
		{name: "bare nanx", topic: metricTopic, payload: `nanx`, reason: ReasonInvalidJSON},
		{name: "bare word", topic: metricTopic, payload: `hot`, reason: ReasonInvalidJSON},
		{name: "bare string", topic: metricTopic, payload: `"21.5"`, reason: ReasonWrongType},
		{name: "bare true", topic: metricTopic, payload: `true`, reason: ReasonWrongType},
		{name: "bare null", topic: metricTopic, payload: `null`, reason: ReasonWrongType},
		{name: "bare unterminated string", topic: metricTopic, payload: `"21.5`, reason: ReasonInvalidJSON},
		{name: "bare on device topic", payload: `21.5`, reason: ReasonWrongType,
			detail: "bare value needs a sensors/{site}/{device}/{metric} topic"},
		{name: "bare NaN on device topic", payload: `NaN`, reason: ReasonWrongType, detail: "bare value"},
		{name: "bare string on device topic", payload: `"x"`, reason: ReasonWrongType},
	}
}

// RFC 8428 section 5.1.2, second example: bt is 2010-06-08T18:01:16.001Z.
const rfc512Times = `[
     {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,
      "bu":"A","bver":5,
      "n":"voltage","u":"V","v":120.1},
     {"n":"current","t":-5,"v":1.2},
     {"n":"current","t":-4,"v":1.3},
     {"n":"current","t":-3,"v":1.4},
     {"n":"current","t":-2,"v":1.5},
     {"n":"current","t":-1,"v":1.6},
     {"n":"current","v":1.7}
   ]`

// RFC 8428 section 5.1.3 (multiple measurements, absolute times).
const rfc513 = `[
     {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
      "bu":"%RH","v":20},
     {"u":"lon","v":24.30621},
     {"u":"lat","v":60.07965},
     {"t":60,"v":20.3},
     {"u":"lon","t":60,"v":24.30622},
     {"u":"lat","t":60,"v":60.07965},
     {"t":120,"v":20.7},
     {"u":"lon","t":120,"v":24.30623},
     {"u":"lat","t":120,"v":60.07966},
     {"u":"%EL","t":150,"v":98},
     {"t":180,"v":21.2},
     {"u":"lon","t":180,"v":24.30628},
     {"u":"lat","t":180,"v":60.07967}
   ]`

// senmlCases run with testNow unless their payload carries absolute times, in
// which case TestDecodeSenMLAbsolute covers them with a matching now.
func senmlCases() []decodeCase {
	name64 := strings.Repeat("n", 64)
	return []decodeCase{
		{name: "RFC 5.1.1 single data point",
			payload: `[
     {"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}
   ]`,
			want: now1(m{"10e2073a01080063": 23.1})},
		{name: "RFC 5.1.2 multiple data points now",
			payload: `[
  {"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},
  {"n":"current","u":"A","v":1.2}
]`,
			want: now1(m{"voltage": 120.1, "current": 1.2})},
		{name: "RFC 5.1.5 string, boolean and data values", payload: `[
    {"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},
    {"n":"label","vs":"Machine Room"},
    {"n":"open","vb":false},
    {"n":"nfv-reader","vd":"aGkgCg"}
  ]`, reason: ReasonWrongType},
		{name: "RFC 5.1.7 base-only record", payload: `[
     {"bn":"urn:dev:ow:10e2073a01080063:"},
     {"n":"temp","u":"Cel","v":23.1},
     {"n":"heat","u":"/","v":1},
     {"n":"fan","u":"/","v":0}
   ]`, want: now1(m{"temp": 23.1, "heat": 1, "fan": 0})},
		{name: "urn base name", payload: `[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","v":21}]`,
			want: now1(m{"temp": 21})},
		{name: "path base name", payload: `[{"bn":"3303/0/","n":"5700","v":21}]`, want: now1(m{"5700": 21})},
		{name: "separator in n", payload: `[{"bn":"dev:","n":"sub/temp","v":21}]`, want: now1(m{"temp": 21})},
		{name: "base name without separator is concatenated", payload: `[{"bn":"ab","n":"cd","v":1}]`,
			want: now1(m{"abcd": 1})},
		{name: "base name alone", payload: `[{"bn":"urn:x:temp","v":1}]`, want: now1(m{"temp": 1})},
		{name: "name 64", payload: `[{"bn":"x:","n":"` + name64 + `","v":1}]`, want: now1(m{name64: 1})},
		{name: "name 65 by concatenation", payload: `[{"bn":"n","n":"` + name64 + `","v":1}]`, reason: ReasonBadName},
		{name: "relative times", payload: `[{"n":"temp","v":1,"t":-5},{"n":"temp","v":2,"t":-4.5},{"n":"temp","v":3}]`,
			want: []reading.Reading{
				rd(nowMs-5000, false, nil, m{"temp": 1}),
				rd(nowMs-4500, false, nil, m{"temp": 2}),
				rd(nowMs, false, nil, m{"temp": 3}),
			}},
		{name: "relative base time", payload: `[{"bt":-60,"n":"a","v":1},{"n":"b","t":30,"v":2},{"n":"c","v":3}]`,
			want: []reading.Reading{
				rd(nowMs-60000, false, nil, m{"a": 1, "c": 3}),
				rd(nowMs-30000, false, nil, m{"b": 2}),
			}},
		{name: "relative time rounds to the nearest ms", payload: `[{"n":"a","v":1,"t":-0.0004},{"n":"b","v":2,"t":-0.0006}]`,
			want: []reading.Reading{
				rd(nowMs, false, nil, m{"a": 1}),
				rd(nowMs-1, false, nil, m{"b": 2}),
			}},
		{name: "absolute time rounds to the nearest ms", payload: `[{"n":"a","v":1,"t":1732559999.0007}]`,
			want: []reading.Reading{rd(nowMs-999, true, nil, m{"a": 1})}},
		{name: "explicit zero time is now", payload: `[{"n":"a","v":1,"t":0},{"n":"b","v":2}]`,
			want: now1(m{"a": 1, "b": 2})},
		{name: "absolute time", payload: `[{"n":"a","v":1,"t":1732559999.5}]`,
			want: []reading.Reading{rd(nowMs-500, true, nil, m{"a": 1})}},
		{name: "absolute base time plus relative offset",
			payload: `[{"bt":1732559990,"n":"a","v":1},{"n":"a","t":5,"v":2},{"n":"b","v":3}]`,
			want: []reading.Reading{
				rd(nowMs-10000, true, nil, m{"a": 1, "b": 3}),
				rd(nowMs-5000, true, nil, m{"a": 2}),
			}},
		{name: "device time and ingest time kept apart",
			payload: `[{"n":"a","v":1,"t":1732560000},{"n":"b","v":2}]`,
			want: []reading.Reading{
				rd(nowMs, true, nil, m{"a": 1}),
				rd(nowMs, false, nil, m{"b": 2}),
			}},
		{name: "same metric same instant last wins", payload: `[{"n":"a","v":1},{"n":"a","v":2}]`,
			want: now1(m{"a": 2})},
		// Different names that end in the same metric at one instant: which
		// one the metric would hold cannot be told, so the pack is refused
		// rather than one value silently replacing the other.
		{name: "two sensors collapse to one metric", payload: `[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","v":21},` +
			`{"bn":"urn:dev:ow:10e2073a01080064:","n":"temp","v":22}]`, reason: ReasonNameCollision,
			detail: `"urn:dev:ow:10e2073a01080064:temp" and "urn:dev:ow:10e2073a01080063:temp" at one instant are both metric "temp"`},
		{name: "separators collapse to one metric", payload: `[{"n":"a:temp","v":1},{"n":"b/temp","v":2}]`, reason: ReasonNameCollision},
		{name: "a prefixed name collapses onto a plain one", payload: `[{"n":"temp","v":1},{"n":"dev:temp","v":2}]`, reason: ReasonNameCollision},
		{name: "same metric at other instants is fine", payload: `[{"n":"a:temp","v":1,"t":-1},{"n":"b:temp","v":2}]`,
			want: []reading.Reading{rd(nowMs-1000, false, nil, m{"temp": 1}), rd(nowMs, false, nil, m{"temp": 2})}},
		{name: "base name and name concatenated equal a whole name", payload: `[{"bn":"ab","n":"cd","v":1},{"bn":"","n":"abcd","v":2}]`,
			want: now1(m{"abcd": 2})},
		{name: "relative time at past edge", payload: `[{"n":"a","v":1,"t":-604800}]`,
			want: []reading.Reading{rd(nowMs-week, false, nil, m{"a": 1})}},
		{name: "relative time before past edge", payload: `[{"n":"a","v":1,"t":-604800.001}]`, reason: ReasonTimestamp},
		{name: "relative time at future edge", payload: `[{"n":"a","v":1,"t":300}]`,
			want: []reading.Reading{rd(nowMs+300000, false, nil, m{"a": 1})}},
		{name: "relative time after future edge", payload: `[{"n":"a","v":1,"t":300.001}]`, reason: ReasonTimestamp},
		{name: "absolute time before past edge", payload: `[{"n":"a","v":1,"t":1731955199.999}]`, reason: ReasonTimestamp},
		{name: "absolute time at past edge", payload: `[{"n":"a","v":1,"t":1731955200}]`,
			want: []reading.Reading{rd(nowMs-week, true, nil, m{"a": 1})}},
		{name: "far relative time", payload: `[{"n":"a","v":1,"t":-1e9}]`, reason: ReasonTimestamp},
		{name: "time overflow", payload: `[{"n":"a","v":1,"t":1e400}]`, reason: ReasonTimestamp},
		{name: "base time plus time overflows", payload: `[{"bt":1e308,"n":"a","v":1,"t":1e308}]`, reason: ReasonTimestamp},
		{name: "time string", payload: `[{"n":"a","v":1,"t":"now"}]`, reason: ReasonTimestamp},
		{name: "base time null", payload: `[{"bt":null,"n":"a","v":1}]`, reason: ReasonTimestamp},

		{name: "base value", payload: `[{"bv":10,"n":"a","v":1.5},{"n":"b","v":-1}]`, want: now1(m{"a": 11.5, "b": 9})},
		{name: "sum alone", payload: `[{"n":"energy","s":42}]`, want: now1(m{"energy": 42})},
		{name: "base sum", payload: `[{"bs":100,"n":"e","s":1}]`, want: now1(m{"e": 101})},
		{name: "value wins over sum", payload: `[{"n":"a","v":1,"s":5}]`, want: now1(m{"a": 1})},
		{name: "base value overflow", payload: `[{"bv":1e308,"n":"a","v":1e308}]`, reason: ReasonNonFinite},
		{name: "value overflow", payload: `[{"n":"a","v":1e400}]`, reason: ReasonNonFinite},
		{name: "value NaN", payload: `[{"n":"a","v":NaN}]`, reason: ReasonNonFinite},
		{name: "value string", payload: `[{"n":"a","v":"1"}]`, reason: ReasonWrongType},
		{name: "value null", payload: `[{"n":"a","v":null}]`, reason: ReasonWrongType},
		{name: "sum string", payload: `[{"n":"a","s":"1"}]`, reason: ReasonWrongType},
		{name: "string value", payload: `[{"n":"a","vs":"x"}]`, reason: ReasonWrongType},
		{name: "boolean value", payload: `[{"n":"a","vb":true}]`, reason: ReasonWrongType},
		{name: "data value", payload: `[{"n":"a","vd":"aGk"}]`, reason: ReasonWrongType},
		{name: "base value string", payload: `[{"bv":"1","n":"a","v":1}]`, reason: ReasonSenML},

		{name: "version 10", payload: `[{"bver":10,"n":"a","v":1}]`, want: now1(m{"a": 1})},
		{name: "version 11", payload: `[{"bver":11,"n":"a","v":1}]`, reason: ReasonSenML},
		{name: "version string", payload: `[{"bver":"10","n":"a","v":1}]`, reason: ReasonSenML},
		{name: "version fraction", payload: `[{"bver":1.5,"n":"a","v":1}]`, reason: ReasonSenML},
		{name: "version zero", payload: `[{"bver":0,"n":"a","v":1}]`, reason: ReasonSenML},
		{name: "update time", payload: `[{"n":"a","v":1,"ut":60}]`, want: now1(m{"a": 1})},
		{name: "update time string", payload: `[{"n":"a","v":1,"ut":"60"}]`, reason: ReasonSenML},
		{name: "unknown field ignored", payload: `[{"n":"a","v":1,"x":{"y":[1,2.5,{"z":null}],"w":"s","e":[],"o":{}},"q":true}]`,
			want: now1(m{"a": 1})},
		{name: "unknown field nested 8", payload: `[{"n":"a","v":1,"x":` + strings.Repeat("[", 8) + strings.Repeat("]", 8) + `}]`,
			want: now1(m{"a": 1})},
		{name: "unknown field nested 9", payload: `[{"n":"a","v":1,"x":` + strings.Repeat("[", 9) + strings.Repeat("]", 9) + `}]`,
			reason: ReasonSenML},
		{name: "unknown field nested deep", payload: `[{"n":"a","v":1,"x":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + `}]`,
			reason: ReasonSenML},
		{name: "unknown field bad JSON", payload: `[{"n":"a","v":1,"x":[1,}]`, reason: ReasonInvalidJSON},
		{name: "unknown field bad object", payload: `[{"n":"a","v":1,"x":{"a" 1}}]`, reason: ReasonInvalidJSON},
		{name: "must-understand field", payload: `[{"n":"a","v":1,"x_":1}]`, reason: ReasonSenML},
		{name: "name not a string", payload: `[{"n":1,"v":1}]`, reason: ReasonSenML},
		{name: "base name not a string", payload: `[{"bn":true,"n":"a","v":1}]`, reason: ReasonSenML},
		{name: "unit not a string", payload: `[{"n":"a","u":5,"v":1}]`, reason: ReasonSenML},
		{name: "named record without value", payload: `[{"n":"a"}]`, reason: ReasonSenML},
		{name: "timed record without value", payload: `[{"n":"a","v":1},{"t":-1}]`, reason: ReasonSenML},
		{name: "record is a number", payload: `[1]`, reason: ReasonSenML},
		{name: "record is an array", payload: `[[]]`, reason: ReasonSenML},
		{name: "record is a string", payload: `["a"]`, reason: ReasonSenML},
		{name: "record is null", payload: `[null]`, reason: ReasonSenML},
		{name: "deeply nested array", payload: strings.Repeat("[", 32000) + strings.Repeat("]", 32000), reason: ReasonSenML},

		{name: "metric name with dot", payload: `[{"n":"a.b","v":1}]`, reason: ReasonBadName},
		{name: "name ends with separator", payload: `[{"n":"x:","v":1}]`, reason: ReasonBadName},
		{name: "no name", payload: `[{"v":1}]`, reason: ReasonBadName},
		{name: "base name ends with separator and no n", payload: `[{"bn":"dev/","v":1}]`, reason: ReasonBadName},
		{name: "escaped separator", payload: `[{"n":"dev\u003atemp","v":1}]`, want: now1(m{"temp": 1})},
		{name: "unicode name", payload: `[{"n":"dev:températur","v":1}]`, reason: ReasonBadName},

		{name: "empty pack", payload: `[]`, reason: ReasonEmpty},
		{name: "empty pack with spaces", payload: ` [ ] `, reason: ReasonEmpty},
		{name: "empty record", payload: `[{}]`, reason: ReasonEmpty},
		{name: "base-only pack", payload: `[{"bn":"x:","bt":-1}]`, reason: ReasonEmpty},
		{name: "metrics at limit", lim: Limits{MaxMetrics: 2}, payload: `[{"n":"a","v":1},{"n":"b","v":2},{"n":"a","v":3}]`,
			want: now1(m{"a": 3, "b": 2})},
		{name: "metrics over limit", lim: Limits{MaxMetrics: 2}, payload: `[{"n":"a","v":1},{"n":"b","v":2},{"n":"c","v":3}]`,
			reason: ReasonTooManyMetrics},
		{name: "limit is per instant", lim: Limits{MaxMetrics: 1},
			payload: `[{"n":"a","v":1,"t":-1},{"n":"b","v":2,"t":-2}]`,
			want: []reading.Reading{
				rd(nowMs-1000, false, nil, m{"a": 1}),
				rd(nowMs-2000, false, nil, m{"b": 2}),
			}},
		{name: "trailing comma", payload: `[{"n":"a","v":1},]`, reason: ReasonInvalidJSON},
		{name: "unterminated", payload: `[{"n":"a","v":1}`, reason: ReasonInvalidJSON},
		{name: "unterminated record", payload: `[{"n":"a","v":1`, reason: ReasonInvalidJSON},
		{name: "extra bracket", payload: `[{"n":"a","v":1}]]`, reason: ReasonInvalidJSON},
		{name: "missing comma", payload: `[{"n":"a" "v":1}]`, reason: ReasonInvalidJSON},
		{name: "record trailing comma", payload: `[{"n":"a","v":1,}]`, reason: ReasonInvalidJSON},
		{name: "garbage record", payload: `[x]`, reason: ReasonInvalidJSON},
		{name: "on a metric topic", topic: metricTopic, payload: `[{"n":"humidity","v":40}]`, want: now1(m{"humidity": 40})},
	}
}

func generalCases() []decodeCase {
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	return []decodeCase{
		{name: "payload at limit", lim: Limits{MaxPayload: 16}, payload: pad(`{"a":1}`, 16), want: now1(m{"a": 1})},
		{name: "payload over limit", lim: Limits{MaxPayload: 16}, payload: pad(`{"a":1}`, 17), reason: ReasonTooLarge},
		{name: "payload at default limit", payload: pad(`{"a":1}`, DefaultMaxPayload), want: now1(m{"a": 1})},
		{name: "payload over default limit", payload: pad(`{"a":1}`, DefaultMaxPayload+1), reason: ReasonTooLarge},
		{name: "size is checked before the topic", topic: "bad", payload: pad("1", DefaultMaxPayload+1), reason: ReasonTooLarge},
		{name: "empty payload", payload: ``, reason: ReasonEmpty},
		{name: "whitespace payload", payload: " \t\r\n ", reason: ReasonEmpty},
		{name: "invalid UTF-8 alone", payload: "\xff", reason: ReasonInvalidUTF8},
		{name: "invalid UTF-8 in key", payload: "{\"a\xff\":1}", reason: ReasonInvalidUTF8},
		{name: "invalid UTF-8 in string", payload: "[{\"n\":\"a\",\"v\":1,\"u\":\"\xc3\x28\"}]", reason: ReasonInvalidUTF8},
		{name: "invalid UTF-8 after number", topic: metricTopic, payload: "21.5\xff", reason: ReasonInvalidUTF8},
		{name: "UTF-8 BOM", payload: "\ufeff{\"a\":1}", reason: ReasonInvalidJSON},
		{name: "topic too short", topic: "sensors/lab", payload: `{"a":1}`, reason: ReasonBadTopic},
		{name: "topic bad name", topic: "sensors/lab/a.b", payload: `{"a":1}`, reason: ReasonBadName},
		{name: "zero limits mean defaults", lim: Limits{}, payload: fmt.Sprintf(`{"ts":%d,"a":1}`, nowMs-week),
			want: []reading.Reading{rd(nowMs-week, true, nil, m{"a": 1})}},
	}
}

func allCases() []decodeCase {
	var all []decodeCase
	for _, group := range [][]decodeCase{objectCases(), bareCases(), senmlCases(), generalCases()} {
		all = append(all, group...)
	}
	return all
}

func TestDecode(t *testing.T) {
	for _, tc := range allCases() {
		t.Run(tc.name, func(t *testing.T) {
			if (tc.want == nil) == (tc.reason == "") {
				t.Fatal("a case needs exactly one of want and reason")
			}
			topic := tc.topic
			if topic == "" {
				topic = devTopic
			}
			lim := tc.lim
			if lim == (Limits{}) {
				lim = DefaultLimits()
			}
			got, err := Decode(topic, []byte(tc.payload), testNow, lim)
			if tc.reason != "" {
				if err == nil {
					t.Fatalf("Decode accepted %s: %+v, want %s", clip(tc.payload), got, tc.reason)
				}
				if r := ReasonOf(err); r != tc.reason {
					t.Fatalf("reason %q (%v), want %q", r, err, tc.reason)
				}
				if got != nil {
					t.Errorf("readings %+v returned with an error", got)
				}
				if !strings.Contains(err.Error(), tc.detail) {
					t.Errorf("error %q does not contain %q", err, tc.detail)
				}
				checkSafeError(t, err)
				return
			}
			if err != nil {
				t.Fatalf("Decode(%s): %v", clip(tc.payload), err)
			}
			for i := range got {
				got[i].Units = nil // TestDecodeSenMLKeepsUnits checks units
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Decode(%s)\n got %s\nwant %s", clip(tc.payload), show(got), show(tc.want))
			}
			for i := range got {
				if err := got[i].Validate(); err != nil {
					t.Errorf("reading %d: %v", i, err)
				}
			}
		})
	}
}

// RFC 8428 examples with absolute times, decoded with a now just after them.
func TestDecodeSenMLAbsolute(t *testing.T) {
	abs := func(now time.Time, ts int64, metrics m) reading.Reading {
		return reading.Reading{Site: "lab", Device: "t1", TS: ts, Metrics: metrics,
			Received: now.UnixMilli(), DeviceTime: true}
	}
	t512 := time.Date(2010, 6, 8, 18, 1, 20, 0, time.UTC)
	t513 := time.Date(2011, 10, 31, 13, 30, 0, 0, time.UTC)
	t516 := time.Date(2011, 10, 31, 16, 27, 10, 0, time.UTC)
	tests := []struct {
		name    string
		now     time.Time
		payload string
		want    []reading.Reading
	}{
		{"RFC 5.1.2 multiple data points, times", t512, rfc512Times, []reading.Reading{
			// The last record has no t, so it is at bt, with voltage.
			abs(t512, 1276020076001, m{"voltage": 120.1, "current": 1.7}),
			abs(t512, 1276020071001, m{"current": 1.2}),
			abs(t512, 1276020072001, m{"current": 1.3}),
			abs(t512, 1276020073001, m{"current": 1.4}),
			abs(t512, 1276020074001, m{"current": 1.5}),
			abs(t512, 1276020075001, m{"current": 1.6}),
		}},
		{"RFC 5.1.2 SensML stream start", t513, `[
     {"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,
      "bu":"%RH","v":21.2},
     {"t":10,"v":21.3},
     {"t":20,"v":21.4}
   ]`, []reading.Reading{
			abs(t513, 1320067464000, m{"10e2073a01080063": 21.2}),
			abs(t513, 1320067474000, m{"10e2073a01080063": 21.3}),
			abs(t513, 1320067484000, m{"10e2073a01080063": 21.4}),
		}},
		{"RFC 5.1.3 multiple measurements, last wins per instant", t513, rfc513, []reading.Reading{
			abs(t513, 1320067464000, m{"10e2073a01080063": 60.07965}),
			abs(t513, 1320067524000, m{"10e2073a01080063": 60.07965}),
			abs(t513, 1320067584000, m{"10e2073a01080063": 60.07966}),
			abs(t513, 1320067614000, m{"10e2073a01080063": 98}),
			abs(t513, 1320067644000, m{"10e2073a01080063": 60.07967}),
		}},
		{"RFC 5.1.7 lights", t516, `[
     {"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},
     {"n":"2001:db8::4","v":0.5},
     {"n":"2001:db8::3","t":0.1,"v":0},
     {"n":"2001:db8::4","t":0.1,"v":0}
   ]`, []reading.Reading{
			abs(t516, 1320078429000, m{"3": 0.5, "4": 0.5}),
			abs(t516, 1320078429100, m{"3": 0, "4": 0}),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(devTopic, []byte(tc.payload), tc.now, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i].Units = nil // TestDecodeSenMLKeepsUnits checks units
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("\n got %s\nwant %s", show(got), show(tc.want))
			}
		})
	}
	// The same pack a week later is outside the window.
	_, err := Decode(devTopic, []byte(rfc512Times), t512.Add(8*24*time.Hour), DefaultLimits())
	if ReasonOf(err) != ReasonTimestamp {
		t.Errorf("RFC 5.1.2 a week late: %v, want %s", err, ReasonTimestamp)
	}
}

// A pack with many instants switches from a linear search to an index; both
// must group the same way and keep first-appearance order.
// RFC 8428 5.1.6, a collection of resources: two devices' temperature and
// humidity at one instant. Both end in the same metrics, so one device's
// values would silently replace the other's; the pack is refused instead
// (one device per topic is what a reading is).
func TestDecodeSenMLCollectionOfResourcesIsRefused(t *testing.T) {
	t516 := time.Date(2011, 10, 31, 16, 27, 10, 0, time.UTC)
	_, err := Decode(devTopic, []byte(`[
     {"bn":"2001:db8::2/","bt":1.320078429e+09,
      "n":"temperature","u":"Cel","v":25.2},
     {"n":"humidity","u":"%RH","v":30},
     {"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},
     {"n":"humidity","u":"%RH","v":67}
   ]`), t516, DefaultLimits())
	if ReasonOf(err) != ReasonNameCollision || !strings.Contains(err.Error(), `"2001:db8::1/temperature" and "2001:db8::2/temperature"`) {
		t.Fatalf("Decode(RFC 5.1.6) = %v, want %s naming both records", err, ReasonNameCollision)
	}
}

func TestDecodeSenMLManyInstants(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	var want []reading.Reading
	for i := range 40 {
		fmt.Fprintf(&b, `{"n":"a","t":%d,"v":%d},`, -i, i)
		want = append(want, rd(nowMs-int64(i)*1000, false, nil, m{"a": float64(i)}))
	}
	// Revisit the first, a middle and the last instant.
	for _, i := range []int{0, 20, 39} {
		fmt.Fprintf(&b, `{"n":"b","t":%d,"v":%d},`, -i, 100+i)
		want[i].Metrics["b"] = float64(100 + i)
	}
	b.WriteString(`{"n":"c","t":-3,"v":7}]`)
	want[3].Metrics["c"] = 7
	got, err := Decode(devTopic, []byte(b.String()), testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("\n got %s\nwant %s", show(got), show(want))
	}
}

// Every Reason must be produced by at least one table case, so the tables
// stay complete when a Reason is added.
func TestEveryReasonCovered(t *testing.T) {
	seen := map[Reason]bool{}
	for _, tc := range allCases() {
		seen[tc.reason] = true
	}
	for _, tc := range topicCases() {
		seen[tc.reason] = true
	}
	for _, r := range Reasons() {
		if !seen[r] {
			t.Errorf("no test case expects %q", r)
		}
	}
}

func TestReasonOf(t *testing.T) {
	e := &Error{Reason: ReasonEmpty, Detail: "x"}
	tests := []struct {
		err  error
		want Reason
	}{
		{nil, ""},
		{e, ReasonEmpty},
		{fmt.Errorf("decode message: %w", e), ReasonEmpty},
		{errors.New("other"), ReasonInvalid},
	}
	for _, tc := range tests {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := e.Error(); got != "empty: x" {
		t.Errorf("Error() = %q", got)
	}
}

func TestReasonsAreLabelSafe(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range append(Reasons(), ReasonInvalid) {
		if !reading.ValidName(string(r)) || strings.ToLower(string(r)) != string(r) {
			t.Errorf("reason %q is not a lower-case label value", r)
		}
		if seen[r] {
			t.Errorf("reason %q listed twice", r)
		}
		seen[r] = true
	}
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxPayload: 64 << 10, MaxMetrics: 256, MaxPast: 7 * 24 * time.Hour, MaxFuture: 5 * time.Minute}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{MaxPayload: -1}).orDefaults(); got != want {
		t.Errorf("negative limits = %+v, want defaults", got)
	}
}

// Decode must not keep a reference to the payload: paho reuses buffers.
func TestDecodeCopiesNames(t *testing.T) {
	payload := []byte(`{"temp":1}`)
	got, err := Decode(devTopic, payload, testNow, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	copy(payload, `{"XXXX":2}`)
	if _, ok := got[0].Metrics["temp"]; !ok {
		t.Fatalf("metric name changed with the payload buffer: %v", got[0].Metrics)
	}
}

// Hostile input must never come back verbatim in an error: details are short,
// valid UTF-8 and free of control characters.
func TestErrorDetailsAreSafe(t *testing.T) {
	big := strings.Repeat("\x00\x1b[31m", 200000)
	inputs := []struct{ topic, payload string }{
		{"sensors/lab/" + big, "1"},
		{"sensors/" + big + "/x", "1"},
		{big, "1"},
		{devTopic, `{"` + strings.Repeat(`\u001b`, 5000) + `":1}`},
		{devTopic, `{"` + strings.Repeat("a", 60000) + `":1}`},
		{devTopic, `{"a":"` + strings.Repeat("\\n", 20000) + `"}`},
		{devTopic, `{"ts":"` + strings.Repeat("\\u0007", 5000) + `","a":1}`},
		{devTopic, `[{"n":"` + strings.Repeat("\\u0000", 5000) + `","v":1}]`},
		{devTopic, `[{"bn":"` + strings.Repeat("x", 30000) + `","n":"` + strings.Repeat("y", 30000) + `","v":1}]`},
		{metricTopic, strings.Repeat("9", 60000) + "x"},
		{metricTopic, "1" + strings.Repeat("\x1b", 1000)},
		{devTopic, `{"a":` + strings.Repeat("9", 500) + `e999}`},
	}
	for _, in := range inputs {
		_, err := Decode(in.topic, []byte(in.payload), testNow, DefaultLimits())
		if err == nil {
			t.Fatalf("Decode(%s) accepted", clip(in.payload))
		}
		checkSafeError(t, err)
	}
}

// maxErrorLen bounds Error(): at most two quoted excerpts of maxQuoted bytes
// (each up to four times longer once control bytes are escaped) and fixed text.
const maxErrorLen = 1024

func checkSafeError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	s := err.Error()
	if e.Reason == "" || len(s) > maxErrorLen || !utf8.ValidString(s) {
		t.Fatalf("unsafe error (%d bytes): %.200q", len(s), s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("control character %q in error %q", r, s)
		}
	}
}

func clip(s string) string { return fmt.Sprintf("%q", reading.Truncate(s, 120)) }

func show(rs []reading.Reading) string {
	var b strings.Builder
	for _, r := range rs {
		seq := "nil"
		if r.Seq != nil {
			seq = fmt.Sprint(*r.Seq)
		}
		fmt.Fprintf(&b, "\n  {%s/%s ts=%d dt=%v seq=%s rx=%d %v}", r.Site, r.Device, r.TS, r.DeviceTime, seq, r.Received, r.Metrics)
	}
	return b.String()
}

// A SenML unit (u, or the base unit bu in force) goes with its metric to
// the reading, where the dashboard labels the chart with it; a unit that is
// not ValidUnit (markup, too long) is dropped, not the reading.
func TestDecodeSenMLKeepsUnits(t *testing.T) {
	pack := `[{"bn":"t1:","bu":"Cel","n":"temp","v":21.5},{"n":"hum","u":"%RH","v":40},` +
		`{"n":"odd","u":"<b>x</b>","v":1},{"n":"plain","bu":"","v":2}]`
	rs, err := Decode(devTopic, []byte(pack), testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d readings, want 1", len(rs))
	}
	want := map[string]string{"temp": "Cel", "hum": "%RH"}
	if !reflect.DeepEqual(rs[0].Units, want) {
		t.Fatalf("units %v, want %v (metrics %v)", rs[0].Units, want, rs[0].Metrics)
	}
	if len(rs[0].Metrics) != 4 {
		t.Fatalf("metrics %v: a bad unit cost a value", rs[0].Metrics)
	}
	r := rs[0]
	r.Units = map[string]string{"temp": "C<"}
	if err := r.Validate(); err == nil {
		t.Fatal("a reading with an invalid unit validated")
	}
	r.Units = map[string]string{"nosuch": "Cel"}
	if err := r.Validate(); err == nil {
		t.Fatal("a reading with the unit of a metric it lacks validated")
	}
}
