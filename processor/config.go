package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/influx"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/processor/window"
)

// Config is the processor's whole configuration, read from EDGEFLOW_*.
type Config struct {
	bus.Config
	bus.StreamConfig
	Influx InfluxConfig `envconfig:"INFLUX"`
	// HubConfig, with EDGEFLOW_HUB_SITES set, makes the processor the hub's
	// InfluxDB writer (hub.go) instead of a site's window processor.
	bus.HubConfig

	ID       string `envconfig:"PROCESSOR_ID" desc:"unique replica id (default: hostname, the pod name in K3s)"`
	HTTPAddr string `envconfig:"PROCESSOR_HTTP_ADDR" default:":8082" desc:"address of /healthz, /readyz, /metrics"`

	Windows     []time.Duration `envconfig:"PROCESSOR_WINDOWS" default:"10s,1m" desc:"tumbling window lengths"`
	Lateness    time.Duration   `envconfig:"PROCESSOR_LATENESS" default:"5s" desc:"how late (event time) a reading may arrive and still count in its window"`
	IdleGrace   time.Duration   `envconfig:"PROCESSOR_IDLE_GRACE" default:"5s" desc:"extra silence, beyond the lateness, before the windows of a device that stopped sending close (counted while the processor is caught up)"`
	ForgetAfter time.Duration   `envconfig:"PROCESSOR_FORGET_AFTER" default:"24h" desc:"how long a silent device's window marks are kept; older readings from it count as late"`

	FlushInterval time.Duration `envconfig:"PROCESSOR_FLUSH_INTERVAL" default:"250ms" desc:"how often a partition writes to InfluxDB and checkpoints (a closed window waits for the next flush: this bounds its delay beyond the lateness)"`
	BatchSize     int           `envconfig:"PROCESSOR_BATCH_SIZE" default:"5000" desc:"most readings per InfluxDB write (a partition flushes early when it has this many)"`
	FetchSize     int           `envconfig:"PROCESSOR_FETCH_SIZE" default:"500" desc:"most messages fetched per request (batches of readings; at the hub, windows), and at most the server's max payload in bytes: what a partition holds undecoded, so it bounds memory"`
	LeaseTTL      time.Duration `envconfig:"PROCESSOR_LEASE_TTL" default:"10s" desc:"how long a dead replica keeps its partitions before another takes them"`
	PurgeInterval time.Duration `envconfig:"PROCESSOR_PURGE_INTERVAL" default:"5s" desc:"how often processed readings are removed from TELEMETRY"`
	DrainTimeout  time.Duration `envconfig:"PROCESSOR_DRAIN_TIMEOUT" default:"20s" desc:"how long SIGTERM waits for the last flush"`

	// hubAckWait, when not zero, replaces hubAckWait (tests).
	hubAckWait time.Duration
}

// InfluxConfig is where windows and raw readings are written (EDGEFLOW_INFLUX_*).
type InfluxConfig struct {
	influx.Config
	Gzip     bool `envconfig:"GZIP" default:"false" desc:"gzip write requests (saves network, costs CPU)"`
	WriteRaw bool `envconfig:"WRITE_RAW" default:"true" desc:"also write every raw reading to the telemetry measurement"`
	// short are the window lengths written to RawBucket (LoadConfig).
	short []time.Duration
}

// LoadConfig reads and validates the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("edgeflow", &c); err != nil {
		return c, err
	}
	if c.ID == "" {
		c.ID, _ = os.Hostname()
	}
	c.Influx.short = influx.ShortLived(c.Windows)
	return c, c.Validate()
}

// IsHub tells whether the processor runs as the hub's InfluxDB writer.
func (c Config) IsHub() bool { return len(c.HubConfig.Sites) > 0 }

// Window is the windowing configuration.
func (c Config) Window() window.Config {
	return window.Config{Sizes: c.Windows, Lateness: c.Lateness, IdleGrace: c.IdleGrace, ForgetAfter: c.ForgetAfter}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate(), c.StreamConfig.Validate(), c.Influx.Validate(), windowErr(c.Window().Validate())}
	if c.IsHub() {
		errs = append(errs, c.HubConfig.Validate())
		if !slices.Contains(c.HubConfig.Streams, bus.StreamAggregates) {
			errs = append(errs, errors.New("EDGEFLOW_HUB_STREAMS must include AGGREGATES: the hub's processor writes the sites' windows"))
		}
	}
	if !reading.ValidName(c.ID) {
		errs = append(errs, fmt.Errorf("EDGEFLOW_PROCESSOR_ID=%q: must match ^[A-Za-z0-9_-]{1,64}$", c.ID))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_PROCESSOR_FLUSH_INTERVAL must be 10ms..1m"))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, errors.New("EDGEFLOW_PROCESSOR_BATCH_SIZE must be 1..100000"))
	}
	if c.FetchSize < 1 || c.FetchSize > 100000 {
		errs = append(errs, errors.New("EDGEFLOW_PROCESSOR_FETCH_SIZE must be 1..100000"))
	}
	if c.LeaseTTL < 3*time.Second {
		errs = append(errs, errors.New("EDGEFLOW_PROCESSOR_LEASE_TTL must be at least 3s"))
	}
	if c.PurgeInterval < c.FlushInterval {
		errs = append(errs, errors.New("EDGEFLOW_PROCESSOR_PURGE_INTERVAL must not be shorter than the flush interval"))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("EDGEFLOW_PROCESSOR_DRAIN_TIMEOUT must be positive"))
	}
	return errors.Join(errs...)
}

// windowErr names the variables behind a window configuration problem (the
// window package speaks of sizes and lateness, not of the environment).
func windowErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("EDGEFLOW_PROCESSOR_WINDOWS, _LATENESS, _IDLE_GRACE, _FORGET_AFTER: %w", err)
}
