package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// The hub of several sites (docs/operations.md#hub): each site's NATS is a
// leaf node of the hub's with its own JetStream domain (the site's name), and
// the hub holds, per site and per exported stream, one stream that sources
// the site's stream across domains. JetStream's sourcing tracks the site's
// stream sequence, so after any outage the hub takes up exactly after the
// last message it stored: no gap, no duplicate, in the site's order, as
// long as the site still holds the messages (its retention bounds an
// outage). One stream per site rather than one sourcing every site: a
// sourced message keeps its Nats-Msg-Id, which is unique within a site only
// (two sites may both have a device lab/t1), and a stream drops a repeated
// ID as a duplicate (docs/decisions.md).

// HubDomain is the hub's JetStream domain unless configured otherwise.
const HubDomain = "hub"

// SiteMetadataKey and SourceMetadataKey record, on a hub stream, the site it
// holds and the site stream it sources.
const (
	SiteMetadataKey   = "edgeflow.site"
	SourceMetadataKey = "edgeflow.source"
)

// exportable maps each stream a site may export to its subjects' first token.
var exportable = map[string]string{
	StreamAggregates: "aggregates",
	StreamAlerts:     "alerts",
	StreamTelemetry:  "telemetry",
}

// DefaultUplinkStreams is what leaves a site unless the operator chooses
// otherwise: the small streams. TELEMETRY (raw readings) is opt-in.
var DefaultUplinkStreams = []string{StreamAggregates, StreamAlerts}

// HubStreamName is the hub stream holding site's copy of stream, such as
// AGGREGATES_greenhouse-north.
func HubStreamName(site, stream string) string { return stream + "_" + site }

// HubSubjectPrefix is what the hub puts before a site's subjects, so that a
// window keeps the site it came from even when two sites name their device
// sites alike: site.greenhouse-north.aggregates.10s.lab.t1.
func HubSubjectPrefix(site string) string { return "site." + site + "." }

// SiteOfHubSubject returns the site name of a subject stored on the hub.
func SiteOfHubSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, "site.")
	if !ok {
		return "", false
	}
	site, _, ok := strings.Cut(rest, ".")
	return site, ok && reading.ValidName(site)
}

// JSAPIPrefix is the JetStream API prefix of a domain, as seen across a leaf
// node link.
func JSAPIPrefix(domain string) string { return "$JS." + domain + ".API" }

// HubConfig is the hub's side (EDGEFLOW_HUB_*): which sites it collects and
// how long it keeps their data.
type HubConfig struct {
	Sites    []string      `envconfig:"HUB_SITES" desc:"site names (each site's EDGEFLOW_SITE_NAME, its JetStream domain) the hub sources, comma-separated"`
	Streams  []string      `envconfig:"HUB_STREAMS" default:"AGGREGATES,ALERTS" desc:"site streams the hub sources: AGGREGATES, ALERTS, TELEMETRY (raw readings)"`
	MaxAge   time.Duration `envconfig:"HUB_MAX_AGE" default:"168h" desc:"how long the hub keeps each site's messages"`
	MaxBytes int64         `envconfig:"HUB_MAX_BYTES" default:"1073741824" desc:"size cap of each hub stream (one per site and stream; oldest go first)"`
}

// Validate reports a hub configuration that cannot work.
func (c HubConfig) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, s := range c.Sites {
		if !reading.ValidName(s) {
			errs = append(errs, fmt.Errorf("EDGEFLOW_HUB_SITES: %q is not a valid site name", reading.Truncate(s, 64)))
		} else if s == HubDomain {
			errs = append(errs, fmt.Errorf("EDGEFLOW_HUB_SITES: %q is the hub's own domain", s))
		} else if seen[s] {
			errs = append(errs, fmt.Errorf("EDGEFLOW_HUB_SITES: %q twice", s))
		}
		seen[s] = true
	}
	errs = append(errs, validStreams("EDGEFLOW_HUB_STREAMS", c.Streams))
	if c.MaxAge < time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_HUB_MAX_AGE must be at least 1m"))
	}
	if c.MaxBytes < 1<<20 {
		errs = append(errs, errors.New("EDGEFLOW_HUB_MAX_BYTES must be at least 1 MiB"))
	}
	return errors.Join(errs...)
}

func validStreams(variable string, streams []string) error {
	if len(streams) == 0 {
		return fmt.Errorf("%s: no stream", variable)
	}
	for _, s := range streams {
		if _, ok := exportable[s]; !ok {
			return fmt.Errorf("%s: %q is not AGGREGATES, ALERTS or TELEMETRY", variable, reading.Truncate(s, 64))
		}
	}
	return nil
}

// HubStream is the hub stream holding site's copy of stream: it sources the
// stream from the site's domain, from its first message on, and prefixes
// every subject with HubSubjectPrefix(site). Its duplicate window drops a
// window or alert the site itself stored twice under one Nats-Msg-Id; the
// sourcing alone (by sequence) never repeats one.
func (c HubConfig) HubStream(sc StreamConfig, site, stream string) jetstream.StreamConfig {
	root := exportable[stream] + ".>"
	return jetstream.StreamConfig{
		Name:        HubStreamName(site, stream),
		Description: fmt.Sprintf("%s of site %s, sourced over its leaf node link", stream, site),
		Sources: []*jetstream.StreamSource{{
			Name:     stream,
			External: &jetstream.ExternalStream{APIPrefix: JSAPIPrefix(site)},
			SubjectTransforms: []jetstream.SubjectTransformConfig{
				{Source: root, Destination: HubSubjectPrefix(site) + root},
			},
		}},
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     c.MaxAge,
		MaxBytes:   c.MaxBytes,
		Duplicates: sc.DedupWindow,
		Storage:    jetstream.FileStorage,
		Replicas:   sc.Replicas,
		Metadata:   map[string]string{SiteMetadataKey: site, SourceMetadataKey: stream},
	}
}

// HubStreams is every hub stream of the configuration.
func (c HubConfig) HubStreams(sc StreamConfig) []jetstream.StreamConfig {
	var out []jetstream.StreamConfig
	for _, site := range c.Sites {
		for _, stream := range c.Streams {
			out = append(out, c.HubStream(sc, site, stream))
		}
	}
	return out
}

// SourceState is a hub stream's view of its site: what a hub metric reads.
type SourceState struct {
	Site, Stream string
	// Lag is how many messages the site's stream held beyond the last one
	// the hub received, as of that message: exact while the link is up,
	// frozen while it is down (the site side's Uplink.Check sees the backlog
	// grow).
	Lag uint64
	// Active is how long ago the hub last heard from the source (NATS
	// reports -1 when never).
	Active time.Duration
	// Msgs is how many of the site's messages the hub stream holds.
	Msgs uint64
	// Err is the error NATS reports for the source, if any.
	Err string
}

// HubSources reads, from the hub's own JetStream, the state of every site
// stream the configuration sources.
func HubSources(ctx context.Context, js jetstream.JetStream, c HubConfig) ([]SourceState, error) {
	var out []SourceState
	for _, site := range c.Sites {
		for _, stream := range c.Streams {
			s, err := js.Stream(ctx, HubStreamName(site, stream))
			if err != nil {
				return out, fmt.Errorf("hub stream %s: %w", HubStreamName(site, stream), err)
			}
			info := s.CachedInfo()
			st := SourceState{Site: site, Stream: stream, Msgs: info.State.Msgs, Active: -1}
			for _, src := range info.Sources {
				st.Lag, st.Active = src.Lag, src.Active
				if src.Error != nil {
					st.Err = src.Error.Error()
				}
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// SiteLocalSubjects never cross a site's leaf node link, either way: a site's
// remote to the hub denies them as imports and exports (nats-server's
// deny_imports and deny_exports). Without it the link is an ordinary NATS
// route for the account: a window published at one site would reach the
// hub and from there every other site's AGGREGATES stream (whose interest
// in aggregates.> crosses the links), and KV writes ($KV) or MQTT state
// ($MQTT) of one site would land in the others'. What the hub gets it
// sources through the site's JetStream API ($JS.<site>.API), which stays
// open.
var SiteLocalSubjects = []string{
	"telemetry.>", "aggregates.>", "alerts.>", "deadletter.>", "notifications.>",
	"live.>", "$KV.>", "$O.>", "$MQTT.>",
}
