package decode

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// fuzzLimits are tighter than the defaults so the fuzzer reaches every limit.
var fuzzLimits = []Limits{
	DefaultLimits(),
	{MaxPayload: 512, MaxMetrics: 3, MaxPast: time.Hour, MaxFuture: time.Second},
}

func FuzzDecode(f *testing.F) {
	for _, tc := range allCases() {
		if len(tc.payload) > 4096 {
			continue // the size cases are covered by TestDecode
		}
		topic := tc.topic
		if topic == "" {
			topic = devTopic
		}
		f.Add(topic, []byte(tc.payload))
	}
	for _, p := range []string{rfc512Times, rfc513} {
		f.Add(devTopic, []byte(p))
	}
	f.Add("sensors/lab/t1/x", []byte(`{"a":1}`))
	f.Add("sensors/a/b/c/d", []byte(`1`))
	f.Add(metricTopic, []byte("-0.0e-0"))
	f.Add(devTopic, []byte(`[{"bn":"a:","bt":1732559999,"bv":1,"bs":2,"bver":10,"n":"b","u":"x","v":3,"s":4,"t":0.5,"ut":1,"z":[{"q":"\"\\\/\b\f\n\r\t\u00e9"}]}]`))

	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		for _, lim := range fuzzLimits {
			got, err := Decode(topic, payload, testNow, lim)
			checkDecodeResult(t, topic, payload, lim, got, err)
		}
	})
}

// checkDecodeResult asserts what holds for every input: an *Error with a
// known Reason and a safe detail, or at least one reading, each valid, from
// the topic's site and device, inside the limits, decoded from valid JSON that
// encoding/json reads the same way.
func checkDecodeResult(t *testing.T, topic string, payload []byte, lim Limits, got []reading.Reading, err error) {
	t.Helper()
	valid := json.Valid(payload)
	if err != nil {
		checkSafeError(t, err)
		r := ReasonOf(err)
		known := false
		for _, k := range Reasons() {
			known = known || k == r
		}
		if !known {
			t.Fatalf("unknown reason %q", r)
		}
		if got != nil {
			t.Fatalf("readings returned with error %v", err)
		}
		if r == ReasonInvalidJSON && valid {
			t.Fatalf("valid JSON %q rejected as invalid: %v", payload, err)
		}
		return
	}
	if len(got) == 0 {
		t.Fatal("no error and no reading")
	}
	if !valid {
		t.Fatalf("accepted invalid JSON %q", payload)
	}
	if len(payload) > lim.MaxPayload || !utf8.Valid(payload) {
		t.Fatalf("accepted a payload of %d bytes or invalid UTF-8", len(payload))
	}
	tp, terr := ParseTopic(topic)
	if terr != nil {
		t.Fatalf("accepted topic %q that ParseTopic rejects: %v", topic, terr)
	}
	minMs := nowMs - lim.MaxPast.Milliseconds()
	maxMs := nowMs + lim.MaxFuture.Milliseconds()
	for i, r := range got {
		if verr := r.Validate(); verr != nil {
			t.Fatalf("reading %d invalid: %v", i, verr)
		}
		if r.Site != tp.Site || r.Device != tp.Device || r.Received != nowMs {
			t.Fatalf("reading %d: site %q device %q rx %d, want %+v rx %d", i, r.Site, r.Device, r.Received, tp, int64(nowMs))
		}
		if r.TS < minMs || r.TS > maxMs {
			t.Fatalf("reading %d: ts %d outside [%d, %d]", i, r.TS, minMs, maxMs)
		}
		if len(r.Metrics) > lim.MaxMetrics {
			t.Fatalf("reading %d: %d metrics, limit %d", i, len(r.Metrics), lim.MaxMetrics)
		}
	}
	if body := bytes.TrimSpace(payload); body[0] == '{' {
		checkObjectAgainstEncodingJSON(t, payload, got)
	}
}

// checkObjectAgainstEncodingJSON decodes an accepted object with
// encoding/json (last duplicate wins there too) and compares.
func checkObjectAgainstEncodingJSON(t *testing.T, payload []byte, got []reading.Reading) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		t.Fatalf("encoding/json rejects accepted object %q: %v", payload, err)
	}
	if len(got) != 1 {
		t.Fatalf("object gave %d readings", len(got))
	}
	r := got[0]
	want := map[string]float64{}
	for k, raw := range fields {
		switch k {
		case "ts":
			if !r.DeviceTime {
				t.Fatalf("ts %s present but DeviceTime false", raw)
			}
		case "seq":
			n, err := strconv.ParseUint(string(raw), 10, 64)
			if err != nil || r.Seq == nil || *r.Seq != n {
				t.Fatalf("seq %s decoded as %v", raw, r.Seq)
			}
		default:
			v, err := strconv.ParseFloat(string(raw), 64)
			if err != nil || math.IsInf(v, 0) {
				t.Fatalf("metric %q = %s accepted", k, raw)
			}
			want[k] = v
		}
	}
	if _, ok := fields["ts"]; !ok && (r.DeviceTime || r.TS != nowMs) {
		t.Fatalf("no ts but reading has ts %d dt %v", r.TS, r.DeviceTime)
	}
	if _, ok := fields["seq"]; !ok && r.Seq != nil {
		t.Fatalf("no seq but reading has seq %d", *r.Seq)
	}
	if len(want) != len(r.Metrics) {
		t.Fatalf("metrics %v, encoding/json gives %v", r.Metrics, want)
	}
	for k, v := range want {
		if g, ok := r.Metrics[k]; !ok || math.Float64bits(g) != math.Float64bits(v) {
			t.Fatalf("metrics %v, encoding/json gives %v", r.Metrics, want)
		}
	}
}

// topicPattern is the accepted topic grammar, written independently of
// ParseTopic.
var topicPattern = regexp.MustCompile(`^sensors/([A-Za-z0-9_-]{1,64})/([A-Za-z0-9_-]{1,64})(?:/([A-Za-z0-9_-]{1,64}))?$`)

func FuzzParseTopic(f *testing.F) {
	for _, tc := range topicCases() {
		if len(tc.topic) <= 4096 {
			f.Add(tc.topic)
		}
	}
	f.Add("sensors/a/b/c")
	f.Add("sensors/a/b//")
	f.Add("sensors/a//b/c")
	f.Add("sensors/\u00e9/b")
	f.Fuzz(func(t *testing.T, topic string) {
		got, err := ParseTopic(topic)
		match := topicPattern.FindStringSubmatch(topic)
		if err != nil {
			checkSafeError(t, err)
			if r := ReasonOf(err); r != ReasonBadTopic && r != ReasonBadName {
				t.Fatalf("reason %q for a topic", r)
			}
			if match != nil {
				t.Fatalf("rejected %q, which matches the grammar: %v", topic, err)
			}
			return
		}
		if match == nil {
			t.Fatalf("accepted %q as %+v, which does not match the grammar", topic, got)
		}
		if got != (Topic{Site: match[1], Device: match[2], Metric: match[3]}) {
			t.Fatalf("ParseTopic(%q) = %+v, grammar gives %q", topic, got, match[1:])
		}
		for _, s := range []string{got.Site, got.Device} {
			if !reading.ValidName(s) {
				t.Fatalf("invalid name %q accepted", s)
			}
		}
		if got.Metric != "" && !reading.ValidName(got.Metric) {
			t.Fatalf("invalid metric %q accepted", got.Metric)
		}
	})
}
