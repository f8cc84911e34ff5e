package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// Defaults of Config. Each is also the default of its flag.
const (
	// DefaultBroker is the broker `task up` starts on the host.
	DefaultBroker = "tcp://127.0.0.1:1883"
	// DefaultDevices is enough distinct devices to spread over processor
	// partitions without making the per-device report unreadable.
	DefaultDevices = 100
	// DefaultSites is a handful of sites so site-level queries have something to group.
	DefaultSites = 4
	// DefaultRate is a sustained load a small K3s agent should absorb.
	DefaultRate = 1000
	// DefaultMetrics matches the JSON example in docs/architecture.md.
	DefaultMetrics = 3
	// DefaultQoS is what real devices use, so the broker and ingest see PUBACK traffic.
	DefaultQoS = 1
	// DefaultPublishers is a few connections: one connection is bound by one
	// TCP stream and paho's single writer goroutine.
	DefaultPublishers = 4
	// DefaultClientPrefix names the MQTT client ids (prefix-0, prefix-1, ...).
	DefaultClientPrefix = "loadgen"
	// DefaultSitePrefix names the sites (site-0, site-1, ...).
	DefaultSitePrefix = "site"
	// DefaultSeqStart is the first seq of every device.
	DefaultSeqStart = 1
	// DefaultMaxInFlight bounds the unacknowledged messages of one connection:
	// enough to hide a loopback round trip at 100k msgs/s, far below the 65535
	// packet identifiers MQTT allows, and small enough that a broker restart
	// resends a bounded burst.
	DefaultMaxInFlight = 1000
	// DefaultDrainTimeout is how long Run waits for the last PUBACKs, which
	// covers one paho reconnect (its back-off starts at 1 s).
	DefaultDrainTimeout = 30 * time.Second
)

// Config describes one load run. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// Broker is the MQTT broker URL (tcp://, ssl://, mqtt://, mqtts://, ws://, wss://).
	Broker string
	// Devices is the number of devices, named dev-0000, dev-0001, ...
	Devices int
	// Sites is the number of sites site-0, site-1, ...; device i is at site i mod Sites.
	Sites int
	// SitePrefix names the sites: prefix-0, prefix-1, ... A second run with
	// another prefix publishes devices distinct from the first's.
	SitePrefix string
	// Rate is the total number of PUBLISH packets per second over all
	// connections, duplicates included; 0 publishes as fast as PUBACKs return.
	Rate float64
	// Count is the total number of distinct messages (duplicates not
	// included); 0 means no limit. At least one of Count and Duration must be set.
	Count int64
	// Duration stops the run after this long; 0 means no limit.
	Duration time.Duration
	// Metrics is the number of numeric fields per message: temperature,
	// humidity, pressure, m3, m4, ...
	Metrics int
	// QoS is the MQTT QoS of every publish (0, 1 or 2).
	QoS byte
	// Publishers is the number of MQTT connections. Each owns a disjoint set
	// of devices (device i belongs to connection i mod Publishers), so the
	// order of one device's messages is kept.
	Publishers int
	// Duplicates is the fraction of messages published a second time with
	// the same payload bytes, right after the first copy, as a redelivery would;
	// which ones is a pure function of device and seq (see Duplicated).
	Duplicates float64
	// ClientPrefix prefixes the MQTT client ids: prefix-0, prefix-1, ...
	ClientPrefix string
	// Username and Password authenticate every connection when Username is set.
	Username string
	Password string
	// CAFile verifies a TLS broker (ssl://, tls://, mqtts://, wss://); empty
	// means the system's roots. CertFile and KeyFile are a client
	// certificate for brokers that verify clients. ServerName overrides the
	// name the broker's certificate is checked against.
	CAFile, CertFile, KeyFile, ServerName string
	// SeqStart is the first seq of every device.
	SeqStart uint64
	// MaxInFlight is the most unacknowledged messages per connection.
	MaxInFlight int
	// DrainTimeout is how long Run waits for outstanding PUBACKs after the
	// last publish; what is still unacknowledged then counts as failed.
	DrainTimeout time.Duration
}

// DefaultConfig returns the defaults; the caller sets Count or Duration.
func DefaultConfig() Config {
	return Config{
		Broker:       DefaultBroker,
		Devices:      DefaultDevices,
		Sites:        DefaultSites,
		SitePrefix:   DefaultSitePrefix,
		Rate:         DefaultRate,
		Metrics:      DefaultMetrics,
		QoS:          DefaultQoS,
		Publishers:   DefaultPublishers,
		ClientPrefix: DefaultClientPrefix,
		SeqStart:     DefaultSeqStart,
		MaxInFlight:  DefaultMaxInFlight,
		DrainTimeout: DefaultDrainTimeout,
	}
}

// maxDevices keeps device names within what the report can sensibly list.
const maxDevices = 1_000_000

// Validate reports every problem at once, in the words of the flags.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Broker); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("-broker %q: want scheme://host:port, e.g. %s", secure.RedactURLs(c.Broker), DefaultBroker))
	} else {
		switch u.Scheme {
		case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		default:
			errs = append(errs, fmt.Errorf("-broker %q: unsupported scheme %q", secure.RedactURLs(c.Broker), u.Scheme))
		}
	}
	if c.Devices < 1 || c.Devices > maxDevices {
		errs = append(errs, fmt.Errorf("-devices %d: must be 1..%d", c.Devices, maxDevices))
	}
	if c.Sites < 1 || c.Sites > c.Devices {
		errs = append(errs, fmt.Errorf("-sites %d: must be 1..devices (%d)", c.Sites, c.Devices))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("-rate %v: must be a finite number >= 0 (0 = unlimited)", c.Rate))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("-count %d: must be >= 0", c.Count))
	}
	if c.Duration < 0 {
		errs = append(errs, fmt.Errorf("-duration %v: must be >= 0", c.Duration))
	}
	if c.Count == 0 && c.Duration == 0 {
		errs = append(errs, errors.New("set -count or -duration (or both: the run stops at whichever comes first)"))
	}
	if c.Metrics < 1 || c.Metrics > 1000 {
		errs = append(errs, fmt.Errorf("-metrics %d: must be 1..1000", c.Metrics))
	}
	if c.QoS > 2 {
		errs = append(errs, fmt.Errorf("-qos %d: must be 0, 1 or 2", c.QoS))
	}
	if c.Publishers < 1 || c.Publishers > c.Devices {
		errs = append(errs, fmt.Errorf("-publishers %d: must be 1..devices (%d): a connection owns whole devices", c.Publishers, c.Devices))
	}
	if !(c.Duplicates >= 0 && c.Duplicates <= 1) {
		errs = append(errs, fmt.Errorf("-duplicates %v: must be a fraction 0..1", c.Duplicates))
	}
	// The prefix plus "-NNN" must stay a client id every broker accepts.
	if len(c.SitePrefix) > 40 || !reading.ValidName(c.SitePrefix) {
		errs = append(errs, fmt.Errorf("-site-prefix %q: must be 1..40 of [A-Za-z0-9_-]", c.SitePrefix))
	}
	if len(c.ClientPrefix) > 40 || !reading.ValidName(c.ClientPrefix) {
		errs = append(errs, fmt.Errorf("-client-prefix %q: must be 1..40 of [A-Za-z0-9_-]", c.ClientPrefix))
	}
	if c.Password != "" && c.Username == "" {
		errs = append(errs, errors.New("-password is set without -username"))
	}
	if _, err := c.TLS(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 65535 {
		errs = append(errs, fmt.Errorf("-max-inflight %d: must be 1..65535 (MQTT packet identifiers)", c.MaxInFlight))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("-drain-timeout %v: must be positive", c.DrainTimeout))
	}
	return errors.Join(errs...)
}

// tlsSchemes are the broker URL schemes paho dials with TLS.
var tlsSchemes = map[string]bool{"ssl": true, "tls": true, "mqtts": true, "wss": true}

// TLS is the TLS configuration of a TLS broker URL (TLS 1.2 or later), nil
// for a plain one. TLS files with a plain URL are an error.
func (c Config) TLS() (*tls.Config, error) {
	files := secure.TLSFiles{CA: c.CAFile, Cert: c.CertFile, Key: c.KeyFile, ServerName: c.ServerName,
		CAName: "-cafile", CertName: "-cert", KeyName: "-key"}
	u, err := url.Parse(c.Broker)
	if err != nil || !tlsSchemes[u.Scheme] {
		if files.Set() {
			return nil, fmt.Errorf("-cafile, -cert, -key and -server-name need a TLS -broker (ssl://host:8883), not %q", secure.RedactURLs(c.Broker))
		}
		return nil, nil
	}
	return files.Config()
}

// DeviceName is the name of device i.
func DeviceName(i int) string { return fmt.Sprintf("dev-%04d", i) }

// SiteName is the name of the site of device i.
func (c Config) SiteName(device int) string {
	return fmt.Sprintf("%s-%d", c.SitePrefix, device%c.Sites)
}

// Topic is the MQTT topic device i publishes on.
func (c Config) Topic(device int) string {
	return "sensors/" + c.SiteName(device) + "/" + DeviceName(device)
}

// DeviceQuota is how many distinct messages device i sends when Count is
// set: Count spread evenly, the first Count mod Devices devices one more.
// It is -1 when Count is 0 (no limit).
func (c Config) DeviceQuota(device int) int64 {
	if c.Count == 0 {
		return -1
	}
	q := c.Count / int64(c.Devices)
	if int64(device) < c.Count%int64(c.Devices) {
		q++
	}
	return q
}
