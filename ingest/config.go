package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/edgeflow/edgeflow/ingest/decode"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// Config is ingest's whole configuration, read from EDGEFLOW_* variables.
type Config struct {
	bus.Config
	bus.StreamConfig

	MQTTURL      string   `envconfig:"MQTT_URL" default:"tcp://127.0.0.1:1883" desc:"MQTT broker URL: tcp:// (or mqtt://) plain, ssl:// (or tls://, mqtts://) TLS 1.2+ (K3s: ssl://mosquitto:8883)"`
	MQTTUsername string   `envconfig:"MQTT_USERNAME" desc:"MQTT username (optional)"`
	MQTTPassword string   `envconfig:"MQTT_PASSWORD" desc:"MQTT password (optional; never logged)"`
	MQTTTLSCA    string   `envconfig:"MQTT_TLS_CA" desc:"CA certificate (PEM) that verifies the broker (default: the system's roots); needs a TLS URL"`
	MQTTTLSCert  string   `envconfig:"MQTT_TLS_CERT" desc:"client certificate (PEM) for brokers that verify clients (with EDGEFLOW_MQTT_TLS_KEY)"`
	MQTTTLSKey   string   `envconfig:"MQTT_TLS_KEY" desc:"the client certificate's private key (PEM)"`
	MQTTTLSName  string   `envconfig:"MQTT_TLS_SERVER_NAME" desc:"name the broker's certificate must carry, when it is not the URL's host"`
	ClientID     string   `envconfig:"INGEST_CLIENT_ID" desc:"MQTT client id; must be stable across restarts for the persistent session (default edgeflow-ingest-<hostname>)"`
	Topics       []string `envconfig:"INGEST_TOPICS" default:"sensors/+/+,sensors/+/+/+" desc:"MQTT topic filters to subscribe to"`
	ShareGroup   string   `envconfig:"INGEST_SHARE_GROUP" desc:"shared-subscription group ($share/<group>/...) for several ingest replicas on one broker; empty (default) subscribes plainly, which is the only mode that survives a Mosquitto 2.0 restart without loss (it does not persist shared subscriptions)"`
	HTTPAddr     string   `envconfig:"INGEST_HTTP_ADDR" default:":8081" desc:"address of /healthz, /readyz, /metrics"`

	MaxPayload int           `envconfig:"INGEST_MAX_PAYLOAD" default:"65536" desc:"largest accepted payload in bytes; larger ones are dead-lettered"`
	MaxMetrics int           `envconfig:"INGEST_MAX_METRICS" default:"256" desc:"most metrics in one reading"`
	MaxPast    time.Duration `envconfig:"INGEST_MAX_PAST" default:"168h" desc:"oldest device timestamp accepted, before now"`
	MaxFuture  time.Duration `envconfig:"INGEST_MAX_FUTURE" default:"5m" desc:"newest device timestamp accepted, after now"`

	MaxInFlight  int           `envconfig:"INGEST_MAX_INFLIGHT" default:"4096" desc:"MQTT messages accepted but not yet acknowledged by JetStream"`
	DrainTimeout time.Duration `envconfig:"INGEST_DRAIN_TIMEOUT" default:"15s" desc:"how long SIGTERM waits for in-flight messages"`
	BatchWait    time.Duration `envconfig:"INGEST_BATCH_WAIT" default:"3ms" desc:"shortest gap between two rounds of batches under a steady flow, and longest an MQTT message waits for its round (a message after a quiet gap goes at once; 0: publish what is queued at once)"`
	BatchMax     int           `envconfig:"INGEST_BATCH_MAX" default:"1000" desc:"most MQTT messages gathered into one round of batches (at most EDGEFLOW_INGEST_MAX_INFLIGHT)"`
}

// LoadConfig reads and validates the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("edgeflow", &c); err != nil {
		return c, err
	}
	if c.ClientID == "" {
		host, _ := os.Hostname()
		c.ClientID = "edgeflow-ingest-" + host
	}
	return c, c.Validate()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := []error{c.Config.Validate(), c.StreamConfig.Validate()}
	if u, err := url.Parse(c.MQTTURL); err != nil || !(plainSchemes[u.Scheme] || tlsSchemes[u.Scheme]) || u.Host == "" {
		// Redacted: the URL may carry user:password.
		errs = append(errs, fmt.Errorf("EDGEFLOW_MQTT_URL=%q: want tcp://host:port or ssl://host:port", secure.RedactURLs(c.MQTTURL)))
	} else if c.mqttTLSFiles().Set() && !tlsSchemes[u.Scheme] {
		errs = append(errs, fmt.Errorf("EDGEFLOW_MQTT_TLS_* is set but EDGEFLOW_MQTT_URL is %s://: use ssl://host:8883 for TLS", u.Scheme))
	}
	if c.MQTTPassword != "" && c.MQTTUsername == "" {
		// MQTT 3.1.1 has no password without a user name.
		errs = append(errs, errors.New("EDGEFLOW_MQTT_PASSWORD is set without EDGEFLOW_MQTT_USERNAME"))
	}
	if _, err := c.mqttTLSFiles().Config(); err != nil {
		errs = append(errs, err)
	}
	if len(c.ClientID) > 128 {
		errs = append(errs, errors.New("EDGEFLOW_INGEST_CLIENT_ID is longer than 128 bytes"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("EDGEFLOW_INGEST_TOPICS is empty"))
	}
	for _, t := range c.Topics {
		if t == "" || strings.HasPrefix(t, "$share/") {
			errs = append(errs, fmt.Errorf("EDGEFLOW_INGEST_TOPICS entry %q: give plain filters; EDGEFLOW_INGEST_SHARE_GROUP adds $share", t))
		}
	}
	if strings.ContainsAny(c.ShareGroup, "/+#") {
		errs = append(errs, fmt.Errorf("EDGEFLOW_INGEST_SHARE_GROUP=%q: must not contain / + #", c.ShareGroup))
	}
	if c.MaxPayload < 64 || c.MaxPayload > 1<<20 {
		errs = append(errs, fmt.Errorf("EDGEFLOW_INGEST_MAX_PAYLOAD=%d: must be 64..1048576", c.MaxPayload))
	}
	if c.MaxMetrics < 1 || c.MaxMetrics > 10000 {
		errs = append(errs, fmt.Errorf("EDGEFLOW_INGEST_MAX_METRICS=%d: must be 1..10000", c.MaxMetrics))
	}
	if c.MaxPast <= 0 || c.MaxFuture <= 0 {
		errs = append(errs, errors.New("EDGEFLOW_INGEST_MAX_PAST and _MAX_FUTURE must be positive"))
	}
	if c.MaxPast > c.TelemetryMaxAge {
		errs = append(errs, errors.New("EDGEFLOW_INGEST_MAX_PAST exceeds EDGEFLOW_TELEMETRY_MAX_AGE"))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1<<20 {
		errs = append(errs, fmt.Errorf("EDGEFLOW_INGEST_MAX_INFLIGHT=%d: must be 1..1048576", c.MaxInFlight))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, errors.New("EDGEFLOW_INGEST_DRAIN_TIMEOUT must be positive"))
	}
	if c.BatchWait < 0 || c.BatchWait > time.Second {
		errs = append(errs, fmt.Errorf("EDGEFLOW_INGEST_BATCH_WAIT=%v: must be 0..1s", c.BatchWait))
	}
	if c.BatchMax < 1 || c.BatchMax > c.MaxInFlight {
		errs = append(errs, fmt.Errorf("EDGEFLOW_INGEST_BATCH_MAX=%d: must be 1..EDGEFLOW_INGEST_MAX_INFLIGHT (%d)", c.BatchMax, c.MaxInFlight))
	}
	return errors.Join(errs...)
}

// The URL schemes paho dials plainly and with TLS.
var (
	plainSchemes = map[string]bool{"tcp": true, "mqtt": true}
	tlsSchemes   = map[string]bool{"ssl": true, "tls": true, "mqtts": true}
)

// mqttTLSFiles are the broker's TLS files, named by their variables.
func (c Config) mqttTLSFiles() secure.TLSFiles {
	return secure.TLSFiles{CA: c.MQTTTLSCA, Cert: c.MQTTTLSCert, Key: c.MQTTTLSKey, ServerName: c.MQTTTLSName,
		CAName: "EDGEFLOW_MQTT_TLS_CA", CertName: "EDGEFLOW_MQTT_TLS_CERT", KeyName: "EDGEFLOW_MQTT_TLS_KEY"}
}

// MQTTTLS is the TLS configuration for a TLS broker URL, nil for a plain
// one (Validate refuses TLS files with a plain URL).
func (c Config) MQTTTLS() (*tls.Config, error) {
	u, err := url.Parse(c.MQTTURL)
	if err != nil || !tlsSchemes[u.Scheme] {
		return nil, nil
	}
	return c.mqttTLSFiles().Config()
}

// Limits is what the decoder enforces.
func (c Config) Limits() decode.Limits {
	return decode.Limits{MaxPayload: c.MaxPayload, MaxMetrics: c.MaxMetrics, MaxPast: c.MaxPast, MaxFuture: c.MaxFuture}
}

// Filters are the topic filters to subscribe to, with the shared group.
func (c Config) Filters() []string {
	out := make([]string, len(c.Topics))
	for i, t := range c.Topics {
		if c.ShareGroup != "" {
			t = "$share/" + c.ShareGroup + "/" + t
		}
		out[i] = t
	}
	return out
}
