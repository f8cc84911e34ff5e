package decode

import (
	"strings"
	"testing"
)

type topicCase struct {
	name   string
	topic  string
	want   Topic
	reason Reason
}

func topicCases() []topicCase {
	n64 := strings.Repeat("a", 64)
	n65 := strings.Repeat("a", 65)
	mb := strings.Repeat("a", 1<<20)
	return []topicCase{
		{name: "device", topic: "sensors/lab/t1", want: Topic{Site: "lab", Device: "t1"}},
		{name: "metric", topic: "sensors/lab/t1/temperature", want: Topic{Site: "lab", Device: "t1", Metric: "temperature"}},
		{name: "all name characters", topic: "sensors/Az09_-/d-_9/M_x-1",
			want: Topic{Site: "Az09_-", Device: "d-_9", Metric: "M_x-1"}},
		{name: "names of 64", topic: "sensors/" + n64 + "/" + n64 + "/" + n64, want: Topic{Site: n64, Device: n64, Metric: n64}},

		{name: "empty", topic: "", reason: ReasonBadTopic},
		{name: "prefix only", topic: "sensors", reason: ReasonBadTopic},
		{name: "prefix slash", topic: "sensors/", reason: ReasonBadTopic},
		{name: "site only", topic: "sensors/lab", reason: ReasonBadTopic},
		{name: "empty device", topic: "sensors/lab/", reason: ReasonBadTopic},
		{name: "empty site", topic: "sensors//t1", reason: ReasonBadTopic},
		{name: "empty metric", topic: "sensors/lab/t1/", reason: ReasonBadTopic},
		{name: "empty device with metric", topic: "sensors/lab//temp", reason: ReasonBadTopic},
		{name: "too many levels", topic: "sensors/lab/t1/temp/x", reason: ReasonBadTopic},
		{name: "many slashes", topic: "sensors/" + strings.Repeat("/", 1<<20), reason: ReasonBadTopic},
		{name: "wrong prefix", topic: "devices/lab/t1", reason: ReasonBadTopic},
		{name: "prefix case", topic: "Sensors/lab/t1", reason: ReasonBadTopic},
		{name: "leading slash", topic: "/sensors/lab/t1", reason: ReasonBadTopic},
		{name: "shared subscription", topic: "$share/ingest/sensors/lab/t1", reason: ReasonBadTopic},
		{name: "invalid UTF-8", topic: "sensors/lab/t1\xff", reason: ReasonBadTopic},
		{name: "1 MB level", topic: "sensors/" + mb, reason: ReasonBadTopic},

		{name: "dot dot", topic: "sensors/../x", reason: ReasonBadName},
		{name: "dot dot device", topic: "sensors/lab/../x", reason: ReasonBadName},
		{name: "dot", topic: "sensors/lab/a.b", reason: ReasonBadName},
		{name: "star", topic: "sensors/lab/a*", reason: ReasonBadName},
		{name: "gt", topic: "sensors/lab/>", reason: ReasonBadName},
		{name: "plus", topic: "sensors/+/t1", reason: ReasonBadName},
		{name: "hash", topic: "sensors/lab/t1/#", reason: ReasonBadName},
		{name: "space", topic: "sensors/lab/a b", reason: ReasonBadName},
		{name: "unicode", topic: "sensors/lab/capteur-é", reason: ReasonBadName},
		{name: "NUL", topic: "sensors/lab/a\x00", reason: ReasonBadName},
		{name: "newline", topic: "sensors/lab\n/t1", reason: ReasonBadName},
		{name: "escape sequence", topic: "sensors/lab/\x1b[31m", reason: ReasonBadName},
		{name: "site of 65", topic: "sensors/" + n65 + "/t1", reason: ReasonBadName},
		{name: "metric of 65", topic: "sensors/lab/t1/" + n65, reason: ReasonBadName},
		{name: "1 MB device", topic: "sensors/lab/" + mb, reason: ReasonBadName},
		{name: "1 MB metric", topic: "sensors/lab/t1/" + mb, reason: ReasonBadName},
	}
}

func TestParseTopic(t *testing.T) {
	for _, tc := range topicCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTopic(tc.topic)
			if tc.reason != "" {
				if err == nil {
					t.Fatalf("ParseTopic accepted %s as %+v", clip(tc.topic), got)
				}
				if r := ReasonOf(err); r != tc.reason {
					t.Fatalf("reason %q (%v), want %q", r, err, tc.reason)
				}
				if got != (Topic{}) {
					t.Errorf("topic %+v returned with an error", got)
				}
				checkSafeError(t, err)
				return
			}
			if err != nil {
				t.Fatalf("ParseTopic(%s): %v", clip(tc.topic), err)
			}
			if got != tc.want {
				t.Fatalf("ParseTopic(%s) = %+v, want %+v", clip(tc.topic), got, tc.want)
			}
		})
	}
}
