package chaos

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Config describes one chaos run. Zero fields take the defaults of
// (*Config).defaults.
type Config struct {
	// Bin holds ingest, processor, notifier, dashboard, loadgen and
	// nats-server. Required.
	Bin string
	// Dir is where the servers keep their data and every process its log.
	// Required.
	Dir string
	// Seed of the fault sequence: the same seed picks the same faults at
	// the same offsets (what they meet on a loaded machine still varies).
	Seed uint64
	// Duration the load generator publishes.
	Duration time.Duration
	// Devices and Rate (messages per second) of the load generator.
	Devices int
	Rate    float64
	// Processors is the number of processor replicas.
	Processors int
	// NATSServers is 1 (a single server) or 3 (a cluster with routes on
	// loopback, every stream and bucket with three replicas).
	NATSServers int
	// Targets, when set, limits the faults to these targets (names as in
	// the summary, or a prefix: "nats" is every NATS server, "processor"
	// every replica).
	Targets []string
	// Kinds, when set, limits the faults to these kinds (kill, restart,
	// pause).
	Kinds []string
	// Warmup passes before the first fault; Quiet is kept free of faults
	// before the load ends, so the last recovery is seen under load.
	Warmup, Quiet time.Duration
	// Gap between one fault's recovery and the next fault is drawn from
	// [MinGap, MaxGap].
	MinGap, MaxGap time.Duration
	// MaxDown bounds how long a killed or stopped target stays down and a
	// paused one paused; each fault draws its own from [MaxDown/4, MaxDown].
	MaxDown time.Duration
	// Windows are the processors' window lengths (EDGEFLOW_PROCESSOR_WINDOWS):
	// every one of them must count every reading.
	Windows []string
	// Lateness and IdleGrace of the processors. LATENESS + IDLE_GRACE must
	// exceed the longest outage, or readings held up by it are late by design
	// (docs/decisions.md, "Lateness and wall-clock closing").
	Lateness, IdleGrace time.Duration
	// FreshWithin is the pipeline's drain criterion: the backlog counts as
	// drained when every device's newest reading in InfluxDB is at most this
	// old.
	FreshWithin time.Duration
	// SettleTimeout bounds the wait for the counts, the notifications and
	// readiness after the load.
	SettleTimeout time.Duration
	// Burst is the number of new devices the device burst publishes one
	// reading each for (an input fault, inputs.go); FutureSkew how far ahead
	// the future-dated reading is dated (ingest accepts up to 5 min). A
	// negative value leaves that input fault out.
	Burst      int
	FutureSkew time.Duration
	// Race tells the summary the services were built with -race.
	Race bool
	// Log receives the run's progress (the fault log); nil discards it.
	Log io.Writer
}

// Defaults of a full run (`task chaos`); the suite sets shorter ones.
const (
	DefaultDuration   = 5 * time.Minute
	DefaultDevices    = 60
	DefaultRate       = 600
	DefaultProcessors = 3
	// DefaultLateness is the processors' default.
	DefaultLateness = 5 * time.Second
	// DefaultIdleGrace covers the longest outage a fault makes (a NATS or
	// InfluxDB restart on a loaded machine) several times over: readings
	// held up by an outage must land in their windows, not be late.
	DefaultIdleGrace = 30 * time.Second
	// DefaultMaxDown keeps every outage inside LATENESS + IDLE_GRACE, so
	// that the readings it held up still land in their windows.
	DefaultMaxDown = 5 * time.Second
	// DefaultBurst is ten times the devices one checkpoint value could hold
	// before checkpoints were stored in chunks.
	DefaultBurst       = 20_000
	DefaultFutureSkew  = 4 * time.Minute
	DefaultFreshWithin = 5 * time.Second
)

// Kinds of fault.
const (
	KindKill    = "kill"    // SIGKILL, down a while, start again
	KindRestart = "restart" // SIGTERM (graceful), down a while, start again
	KindPause   = "pause"   // SIGSTOP, a while, SIGCONT
)

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.Devices <= 0 {
		c.Devices = DefaultDevices
	}
	if c.Rate <= 0 {
		c.Rate = DefaultRate
	}
	if c.Processors <= 0 {
		c.Processors = DefaultProcessors
	}
	if c.NATSServers <= 0 {
		c.NATSServers = 1
	}
	if c.Warmup <= 0 {
		c.Warmup = min(15*time.Second, c.Duration/8)
	}
	if c.Quiet <= 0 {
		c.Quiet = min(30*time.Second, c.Duration/6)
	}
	if c.MinGap <= 0 {
		c.MinGap = 5 * time.Second
	}
	if c.MaxGap < c.MinGap {
		c.MaxGap = 2 * c.MinGap
	}
	if c.MaxDown <= 0 {
		c.MaxDown = DefaultMaxDown
	}
	if len(c.Windows) == 0 {
		c.Windows = []string{"10s", "1m"}
	}
	if c.Lateness <= 0 {
		c.Lateness = DefaultLateness
	}
	if c.IdleGrace <= 0 {
		c.IdleGrace = DefaultIdleGrace
	}
	if c.FreshWithin <= 0 {
		c.FreshWithin = DefaultFreshWithin
	}
	if c.SettleTimeout <= 0 {
		c.SettleTimeout = 4 * time.Minute
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.FutureSkew == 0 {
		c.FutureSkew = DefaultFutureSkew
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

func (c *Config) validate() error {
	var errs []error
	if c.Bin == "" {
		errs = append(errs, errors.New("no Bin"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("no Dir"))
	}
	if c.NATSServers != 1 && c.NATSServers != 3 {
		errs = append(errs, fmt.Errorf("NATSServers %d: want 1 or 3", c.NATSServers))
	}
	for _, k := range c.Kinds {
		if k != KindKill && k != KindRestart && k != KindPause {
			errs = append(errs, fmt.Errorf("fault kind %q: want kill, restart or pause", k))
		}
	}
	if c.Warmup+c.Quiet >= c.Duration {
		errs = append(errs, fmt.Errorf("warmup %s and quiet %s leave no time for faults in %s", c.Warmup, c.Quiet, c.Duration))
	}
	// An outage as long as LATENESS + IDLE_GRACE makes the readings it held
	// back late by design; keep every one well inside it.
	if outage := c.MaxDown + 15*time.Second; c.Lateness+c.IdleGrace < outage {
		errs = append(errs, fmt.Errorf("lateness %s + idle grace %s must exceed the longest outage (max down %s + 15 s to start again)",
			c.Lateness, c.IdleGrace, c.MaxDown))
	}
	if c.FutureSkew >= 5*time.Minute {
		errs = append(errs, fmt.Errorf("future skew %s: ingest refuses readings 5 min or more ahead", c.FutureSkew))
	}
	if c.MaxDown > time.Minute {
		errs = append(errs, fmt.Errorf("max down %s: at most 1m; longer outages are the outage tests' work, not a random run's", c.MaxDown))
	}
	return errors.Join(errs...)
}

// selected reports whether target name may be faulted.
func (c *Config) selected(name string) bool {
	if len(c.Targets) == 0 {
		return true
	}
	for _, t := range c.Targets {
		if name == t || strings.HasPrefix(name, t) {
			return true
		}
	}
	return false
}

func (c *Config) kindAllowed(k string) bool {
	if len(c.Kinds) == 0 {
		return true
	}
	for _, x := range c.Kinds {
		if x == k {
			return true
		}
	}
	return false
}
