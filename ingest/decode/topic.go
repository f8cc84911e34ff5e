package decode

import (
	"strings"
	"unicode/utf8"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// topicPrefix is the first level of every sensor topic.
const topicPrefix = "sensors/"

// levelNames name the levels after the prefix, for error details.
var levelNames = [...]string{"site", "device", "metric"}

// Topic is a parsed sensor topic. Every non-empty field passed
// reading.ValidName.
type Topic struct {
	Site, Device string
	// Metric is "" for a device topic (sensors/{site}/{device}).
	Metric string
}

// ParseTopic parses sensors/{site}/{device} or sensors/{site}/{device}/{metric}.
// A structural fault (prefix, number of levels, empty level, invalid UTF-8) is
// ReasonBadTopic; a level that fails reading.ValidName is ReasonBadName. Paho
// hands the publish topic, never the $share/... subscription filter, so no
// shared-subscription prefix is accepted.
func ParseTopic(topic string) (Topic, error) {
	t, err := parseTopic(topic)
	if err != nil {
		return Topic{}, err
	}
	return t, nil
}

func parseTopic(topic string) (Topic, *Error) {
	if !utf8.ValidString(topic) {
		return Topic{}, fail(ReasonBadTopic, "topic %s is not valid UTF-8", quote(topic))
	}
	rest, ok := strings.CutPrefix(topic, topicPrefix)
	if !ok {
		return Topic{}, fail(ReasonBadTopic, "topic %s does not start with %q", quote(topic), topicPrefix)
	}
	var seg [3]string
	n := 0
	for {
		i := strings.IndexByte(rest, '/')
		if i >= 0 && n == len(seg)-1 {
			return Topic{}, fail(ReasonBadTopic, "topic %s has more than 4 levels", quote(topic))
		}
		if i < 0 {
			seg[n] = rest
			n++
			break
		}
		seg[n], rest = rest[:i], rest[i+1:]
		n++
	}
	if n < 2 {
		return Topic{}, fail(ReasonBadTopic, "topic %s needs sensors/{site}/{device}[/{metric}]", quote(topic))
	}
	for i, what := range levelNames[:n] {
		s := seg[i]
		if s == "" {
			return Topic{}, fail(ReasonBadTopic, "topic %s has an empty %s level", quote(topic), what)
		}
		if !reading.ValidName(s) {
			return Topic{}, fail(ReasonBadName, "%s %s in topic must match ^[A-Za-z0-9_-]{1,64}$", what, quote(s))
		}
	}
	return Topic{Site: seg[0], Device: seg[1], Metric: seg[2]}, nil
}
