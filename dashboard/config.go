package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgeflow/edgeflow/dashboard/pipeline"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/influx"
)

// Config is the dashboard's whole configuration, read from EDGEFLOW_*.
type Config struct {
	bus.Config
	Influx influx.Config `envconfig:"INFLUX"`
	// The site's uplink to a hub (EDGEFLOW_SITE_NAME, EDGEFLOW_UPLINK_*):
	// watched and shown in the pipeline view when a site name is set.
	bus.UplinkConfig

	HTTPAddr string          `envconfig:"DASHBOARD_HTTP_ADDR" default:":8080" desc:"address of the dashboard and its /healthz, /readyz, /metrics"`
	Token    string          `envconfig:"DASHBOARD_TOKEN" desc:"access token (optional; from a Secret): when set, every page and API asks for it as a Bearer token or as the password of HTTP basic auth (any user name); never logged"`
	Services string          `envconfig:"DASHBOARD_SERVICES" desc:"services whose /metrics and /readyz the pipeline view reads, as name=URL,name=URL (e.g. ingest=http://127.0.0.1:8081,processor=http://127.0.0.1:8082)"`
	Windows  []time.Duration `envconfig:"DASHBOARD_WINDOWS" default:"10s,1m" desc:"window lengths the processors write (EDGEFLOW_PROCESSOR_WINDOWS): history reads telemetry_{window}, the finest that keeps a chart under 1500 windows"`

	OfflineAfter   time.Duration `envconfig:"DASHBOARD_OFFLINE_AFTER" default:"30s" desc:"a device not heard from for this long shows as offline"`
	LiveInterval   time.Duration `envconfig:"DASHBOARD_LIVE_INTERVAL" default:"1s" desc:"live updates are coalesced and sent at most once per device per interval, in one batch"`
	ScrapeInterval time.Duration `envconfig:"DASHBOARD_SCRAPE_INTERVAL" default:"5s" desc:"how often the pipeline view scrapes the services and reads the streams, and the uplink to the hub is checked"`
	DeviceMemory   int           `envconfig:"DASHBOARD_DEVICE_MEMORY_MIB" default:"40" desc:"heap the devices' latest values and 2-minute histories may take (MiB); past it the devices heard from least recently are forgotten (edgeflow_dashboard_devices_evicted_total) until they send again. A device with 8 metrics takes about 17 kB"`
	MaxClients     int           `envconfig:"DASHBOARD_MAX_CLIENTS" default:"500" desc:"most simultaneous live (SSE) connections; more are refused with 503"`
	SSEBuffer      int           `envconfig:"DASHBOARD_SSE_BUFFER" default:"64" desc:"live frames queued per browser; a slow one loses the oldest (edgeflow_dashboard_sse_dropped_total) and reloads"`
	DeadLetters    int           `envconfig:"DASHBOARD_DEADLETTERS" default:"50" desc:"latest dead-lettered messages shown"`
	AlertHistory   int           `envconfig:"DASHBOARD_ALERT_HISTORY" default:"200" desc:"alert state changes shown in the alerts history"`
}

// LoadConfig reads and validates the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("edgeflow", &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Targets are the services of EDGEFLOW_DASHBOARD_SERVICES.
func (c Config) Targets() []pipeline.Target {
	t, _ := pipeline.ParseTargets(c.Services)
	return t
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate(), c.Influx.Validate(), c.UplinkConfig.Validate()}
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_HTTP_ADDR is empty"))
	}
	if _, err := pipeline.ParseTargets(c.Services); err != nil {
		errs = append(errs, fmt.Errorf("EDGEFLOW_DASHBOARD_SERVICES: %w", err))
	}
	if len(c.Windows) == 0 {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_WINDOWS is empty"))
	}
	for _, w := range c.Windows {
		if w < time.Second || w%time.Second != 0 {
			errs = append(errs, fmt.Errorf("EDGEFLOW_DASHBOARD_WINDOWS: %s is not a whole number of seconds", w))
		}
	}
	if c.OfflineAfter < time.Second {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_OFFLINE_AFTER must be at least 1s"))
	}
	if c.LiveInterval < 100*time.Millisecond || c.LiveInterval > time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_LIVE_INTERVAL must be 100ms..1m"))
	}
	if c.ScrapeInterval < 500*time.Millisecond || c.ScrapeInterval > 10*time.Minute {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_SCRAPE_INTERVAL must be 500ms..10m"))
	}
	if c.DeviceMemory < 1 || c.DeviceMemory > 1<<20 {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_DEVICE_MEMORY_MIB must be 1..1048576"))
	}
	if c.MaxClients < 1 || c.MaxClients > 100_000 {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_MAX_CLIENTS must be 1..100000"))
	}
	if c.SSEBuffer < 4 || c.SSEBuffer > 4096 {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_SSE_BUFFER must be 4..4096"))
	}
	if c.DeadLetters < 1 || c.DeadLetters > 1000 {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_DEADLETTERS must be 1..1000"))
	}
	if c.AlertHistory < 1 || c.AlertHistory > 10000 {
		errs = append(errs, errors.New("EDGEFLOW_DASHBOARD_ALERT_HISTORY must be 1..10000"))
	}
	return errors.Join(errs...)
}
