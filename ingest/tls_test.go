package main

import (
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeflow/edgeflow/devenv"
)

const mqttTestPassword = "mqtt-pw-5d1c0a-never-shown"

func TestConfigRefusesInsecureCombinations(t *testing.T) {
	certs, err := devenv.WriteTestCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"TLS files with a plain URL", map[string]string{"EDGEFLOW_MQTT_URL": "tcp://broker:1883", "EDGEFLOW_MQTT_TLS_CA": certs.CA}, "use ssl://"},
		{"password without user", map[string]string{"EDGEFLOW_MQTT_PASSWORD": mqttTestPassword}, "EDGEFLOW_MQTT_PASSWORD is set without EDGEFLOW_MQTT_USERNAME"},
		{"missing CA", map[string]string{"EDGEFLOW_MQTT_URL": "ssl://broker:8883", "EDGEFLOW_MQTT_TLS_CA": "/nonexistent/ca.crt"}, "EDGEFLOW_MQTT_TLS_CA"},
		{"cert without key", map[string]string{"EDGEFLOW_MQTT_URL": "ssl://broker:8883", "EDGEFLOW_MQTT_TLS_CERT": certs.ClientCert}, "EDGEFLOW_MQTT_TLS_CERT is set without EDGEFLOW_MQTT_TLS_KEY"},
		{"credentials in a bad URL", map[string]string{"EDGEFLOW_MQTT_URL": "http://ingest:" + mqttTestPassword + "@broker"}, "EDGEFLOW_MQTT_URL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := LoadConfig()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadConfig() = %v, want an error naming %s", err, c.want)
			}
			if strings.Contains(err.Error(), mqttTestPassword) {
				t.Fatalf("LoadConfig() = %q shows the password", err)
			}
		})
	}
	for _, scheme := range []string{"ssl", "tls", "mqtts"} {
		t.Setenv("EDGEFLOW_MQTT_URL", scheme+"://broker:8883")
		t.Setenv("EDGEFLOW_MQTT_TLS_CA", certs.CA)
		c, err := LoadConfig()
		if err != nil {
			t.Fatalf("%s: %v", scheme, err)
		}
		tc, err := c.MQTTTLS()
		if err != nil || tc == nil || tc.MinVersion != tls.VersionTLS12 || tc.RootCAs == nil {
			t.Fatalf("%s://: TLS config %+v, %v; want TLS 1.2+ with the CA", scheme, tc, err)
		}
	}
}

// ingest's MQTT options against the shipped broker configuration in secure
// mode: with the CA and the ingest user it connects, subscribes and
// receives a device's reading; a wrong password, a missing CA or the plain
// scheme does not connect.
func TestMQTTOptionsConnectToSecureBroker(t *testing.T) {
	_, err := devenv.MosquittoBinary()
	devenv.RequireInstalled(t, err)
	dir := t.TempDir()
	sec, err := devenv.WriteMosquittoSecurity(filepath.Join(dir, "sec"), map[string]string{"ingest": mqttTestPassword, "device": "device-pw"})
	if err != nil {
		t.Fatal(err)
	}
	broker, err := devenv.StartMosquitto(t.Context(), devenv.MosquittoOptions{Dir: filepath.Join(dir, "broker"), Secure: sec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Stop(t.Context()) })

	t.Setenv("EDGEFLOW_INGEST_CLIENT_ID", "ingest-tls-test")
	base, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	base.MQTTURL, base.MQTTUsername, base.MQTTPassword = broker.URL, "ingest", mqttTestPassword
	base.MQTTTLSCA, base.MQTTTLSName = sec.CAFile, "localhost"

	start := func(cfg Config) (mqtt.Client, *Bridge) {
		t.Helper()
		b := newTestBridge(time.Now(), 1)
		o, err := mqttOptions(cfg, slog.New(slog.DiscardHandler), b)
		if err != nil {
			t.Fatal(err)
		}
		c := mqtt.NewClient(o)
		c.Connect()
		t.Cleanup(func() { c.Disconnect(100) })
		return c, b
	}
	connected := func(c mqtt.Client, within time.Duration) bool {
		deadline := time.Now().Add(within)
		for !c.IsConnectionOpen() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
		return true
	}

	c, b := start(base)
	if !connected(c, 10*time.Second) {
		t.Fatal("ingest's options did not connect to the TLS broker")
	}
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker.URL).SetClientID("dev").
		SetUsername("device").SetPassword("device-pw").SetTLSConfig(mustTLS(t, base)))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("device connect: %v", tok.Error())
	}
	defer dev.Disconnect(100)
	deadline := time.Now().Add(10 * time.Second)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatal("no reading reached ingest over TLS")
		}
		dev.Publish("sensors/lab/t1/temperature", 1, false, "21.5").WaitTimeout(time.Second)
		select {
		case in := <-b.incoming:
			got = in.m.Topic() == "sensors/lab/t1/temperature"
		case <-time.After(200 * time.Millisecond): // subscribed yet?
		}
	}

	for name, f := range map[string]func(*Config){
		"wrong password": func(c *Config) { c.MQTTPassword = "wrong" },
		"system roots":   func(c *Config) { c.MQTTTLSCA = "" },
		"wrong name":     func(c *Config) { c.MQTTTLSName = "evil.example" },
	} {
		cfg := base
		cfg.ClientID = "ingest-tls-" + strings.ReplaceAll(name, " ", "-")
		f(&cfg)
		if c, _ := start(cfg); connected(c, 2*time.Second) {
			t.Errorf("%s: connected", name)
		}
	}
}

func mustTLS(t *testing.T, c Config) *tls.Config {
	t.Helper()
	tc, err := c.MQTTTLS()
	if err != nil {
		t.Fatal(err)
	}
	return tc
}
