package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// Config is the notifier's whole configuration, read from EDGEFLOW_*. The
// alert rules themselves are in the file EDGEFLOW_RULES names.
type Config struct {
	bus.Config
	bus.StreamConfig

	Rules     string        `envconfig:"RULES" default:"rules.yaml" desc:"the alert rules file (README: Alert rules); re-read when it changes"`
	ID        string        `envconfig:"NOTIFIER_ID" desc:"unique replica id (default: hostname, the pod name in K3s)"`
	HTTPAddr  string        `envconfig:"NOTIFIER_HTTP_ADDR" default:":8090" desc:"address of /healthz, /readyz, /metrics, /alerts"`
	RulesPoll time.Duration `envconfig:"NOTIFIER_RULES_POLL" default:"2s" desc:"how often the rules file is checked for changes"`
	Tick      time.Duration `envconfig:"NOTIFIER_TICK" default:"1s" desc:"how often offline rules, reminders and unsent notifications are checked"`
	Failover  time.Duration `envconfig:"NOTIFIER_FAILOVER" default:"10s" desc:"how long the windows and deliveries a replica held when it died wait before another replica takes them over"`
	// QueueMaxBytes bounds NOTIFICATIONS. When it is full a new notification
	// stays in its alert's outbox and is retried: nothing is dropped.
	QueueMaxBytes int64         `envconfig:"NOTIFIER_QUEUE_MAX_BYTES" default:"67108864" desc:"size of the NOTIFICATIONS delivery queue; when full, new notifications wait in the alert state and are retried"`
	DrainTimeout  time.Duration `envconfig:"NOTIFIER_DRAIN_TIMEOUT" default:"15s" desc:"how long SIGTERM waits for evaluations and deliveries in flight"`
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
	return c, c.Validate()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate(), c.StreamConfig.Validate()}
	if !reading.ValidName(c.ID) {
		errs = append(errs, fmt.Errorf("EDGEFLOW_NOTIFIER_ID=%q: must match ^[A-Za-z0-9_-]{1,64}$", c.ID))
	}
	if c.Rules == "" {
		errs = append(errs, errors.New("EDGEFLOW_RULES is empty: name the rules file"))
	}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("EDGEFLOW_NOTIFIER_HTTP_ADDR is empty"))
	}
	if c.RulesPoll < 100*time.Millisecond || c.RulesPoll > 10*time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_NOTIFIER_RULES_POLL must be 100ms..10m"))
	}
	if c.Tick < 100*time.Millisecond || c.Tick > time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_NOTIFIER_TICK must be 100ms..1m"))
	}
	if c.Failover < 2*time.Second || c.Failover > 10*time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_NOTIFIER_FAILOVER must be 2s..10m"))
	}
	if c.QueueMaxBytes < 1<<20 {
		errs = append(errs, errors.New("EDGEFLOW_NOTIFIER_QUEUE_MAX_BYTES must be at least 1 MiB"))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("EDGEFLOW_NOTIFIER_DRAIN_TIMEOUT must be positive"))
	}
	return errors.Join(errs...)
}
