package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// UplinkConfig is a site's side of the uplink (EDGEFLOW_SITE_NAME,
// EDGEFLOW_UPLINK_*). The site's NATS server carries the link itself (a leaf
// node remote to the hub, with JetStream domain = the site name); this is
// what the site's services need to watch it.
type UplinkConfig struct {
	Site      string   `envconfig:"SITE_NAME" desc:"this deployment's name (greenhouse-north): its NATS JetStream domain and its prefix at the hub; empty: no uplink"`
	Streams   []string `envconfig:"UPLINK_STREAMS" default:"AGGREGATES,ALERTS" desc:"streams that leave the site for the hub (the hub's EDGEFLOW_HUB_STREAMS must source them); TELEMETRY adds raw readings"`
	HubDomain string   `envconfig:"UPLINK_HUB_DOMAIN" default:"hub" desc:"the hub's JetStream domain"`
}

// Enabled tells whether the site has an uplink.
func (c UplinkConfig) Enabled() bool { return c.Site != "" }

// Validate reports an uplink configuration that cannot work.
func (c UplinkConfig) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if !reading.ValidName(c.Site) {
		errs = append(errs, fmt.Errorf("EDGEFLOW_SITE_NAME: %q is not a valid name", reading.Truncate(c.Site, 64)))
	}
	if !reading.ValidName(c.HubDomain) || c.HubDomain == c.Site {
		errs = append(errs, fmt.Errorf("EDGEFLOW_UPLINK_HUB_DOMAIN: %q must be a valid name other than the site's", reading.Truncate(c.HubDomain, 64)))
	}
	errs = append(errs, validStreams("EDGEFLOW_UPLINK_STREAMS", c.Streams))
	return errors.Join(errs...)
}

// UplinkStatus is one exported stream's progress towards the hub.
type UplinkStatus struct {
	Stream string
	// SiteSeq is the last sequence of the site's stream.
	SiteSeq uint64
	// HubSeq is the site sequence of the newest message the hub holds, as
	// last seen: while the link is down it stays where it was.
	HubSeq uint64
	// Backlog is SiteSeq - HubSeq: the messages not known to be at the hub.
	// Those older than the site's retention are lost to the hub when the
	// link returns (docs/operations.md#hub).
	Backlog uint64
}

// ErrHubUnreachable means the hub's JetStream did not answer over the leaf
// node link: the link is down or refused. NATS does not tell the site's
// clients why; the site's nats-server logs it (for example "Authorization
// Violation" for wrong leaf node credentials).
var ErrHubUnreachable = errors.New("hub unreachable over the leaf node link (the site's NATS server log says why)")

// NotSourcedError is Check's error for a stream the site exports and the hub
// answers it does not hold: a configuration that cannot work until the
// hub's is changed, unlike ErrHubUnreachable. Find it with errors.As.
type NotSourcedError struct {
	Site, Stream string
}

func (e *NotSourcedError) Error() string {
	return fmt.Sprintf("the hub does not source %s from site %s: add %s to its EDGEFLOW_HUB_SITES and %s to its EDGEFLOW_HUB_STREAMS",
		e.Stream, e.Site, e.Site, e.Stream)
}

// Uplink watches a site's uplink from one of its NATS connections.
type Uplink struct {
	cfg       UplinkConfig
	site, hub jetstream.JetStream

	mu     sync.Mutex
	hubSeq map[string]uint64
}

// NewUplink watches cfg's streams through nc, a connection to the site's NATS.
func NewUplink(nc *nats.Conn, cfg UplinkConfig) (*Uplink, error) {
	site, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	hub, err := jetstream.NewWithDomain(nc, cfg.HubDomain)
	if err != nil {
		return nil, err
	}
	return &Uplink{cfg: cfg, site: site, hub: hub, hubSeq: map[string]uint64{}}, nil
}

// Check measures every exported stream's backlog. It returns the statuses
// (with the last known hub position when the hub cannot be asked) and an
// error, fit for readiness, when the hub is unreachable or does not hold a
// stream the site exports.
func (u *Uplink) Check(ctx context.Context) ([]UplinkStatus, error) {
	var out []UplinkStatus
	var errs []error
	for _, stream := range u.cfg.Streams {
		s, err := u.site.Stream(ctx, stream)
		if err != nil {
			return out, fmt.Errorf("site stream %s: %w", stream, err)
		}
		st := UplinkStatus{Stream: stream, SiteSeq: s.CachedInfo().State.LastSeq}
		hubSeq, err := u.hubPosition(ctx, stream)
		u.mu.Lock()
		if err == nil {
			u.hubSeq[stream] = hubSeq
		} else {
			errs = append(errs, err)
		}
		st.HubSeq = u.hubSeq[stream]
		u.mu.Unlock()
		if st.SiteSeq > st.HubSeq {
			st.Backlog = st.SiteSeq - st.HubSeq
		}
		out = append(out, st)
	}
	return out, errors.Join(errs...)
}

// hubPosition reads the site sequence of the newest message of the hub's
// copy of stream from its Nats-Stream-Source header.
func (u *Uplink) hubPosition(ctx context.Context, stream string) (uint64, error) {
	name := HubStreamName(u.cfg.Site, stream)
	s, err := u.hub.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return 0, &NotSourcedError{Site: u.cfg.Site, Stream: stream}
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return 0, fmt.Errorf("%s: %w: %w", stream, ErrHubUnreachable, err)
	case err != nil:
		return 0, fmt.Errorf("hub stream %s: %w", name, err)
	}
	last := s.CachedInfo().State.LastSeq
	if last == 0 {
		return 0, nil
	}
	m, err := s.GetMsg(ctx, last)
	if err != nil {
		return 0, fmt.Errorf("hub stream %s: message %d: %w", name, last, err)
	}
	return SourceSequence(m.Header.Get(StreamSourceHeader))
}

// SourceSequence reads the origin stream's sequence from a sourced message's
// Nats-Stream-Source header, "<source id> <sequence> <...> <subject>".
func SourceSequence(header string) (uint64, error) {
	f := strings.Fields(header)
	if len(f) < 2 {
		return 0, fmt.Errorf("no source sequence in %q", reading.Truncate(header, 128))
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("source sequence in %q: %w", reading.Truncate(header, 128), err)
	}
	return n, nil
}

// StreamSourceHeader is the header JetStream puts on a sourced message.
const StreamSourceHeader = "Nats-Stream-Source"
