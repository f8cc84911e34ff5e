// Command ingest subscribes to the sensors' MQTT topics, validates and
// normalises every message, and publishes its readings in batches to the
// TELEMETRY stream of NATS JetStream; what it rejects goes to DEADLETTER with the reason. See
// docs/architecture.md and docs/guarantees.md for the contract and bridge.go for
// the guarantees.
package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/retry"
	"github.com/edgeflow/edgeflow/internal/secure"
	"github.com/edgeflow/edgeflow/internal/service"
)

func main() { service.Main("ingest", LoadConfig, run) }

func run(ctx context.Context, cfg Config) error {
	log := service.NewLogger("ingest")
	reg := service.NewRegistry()
	health := service.NewHealth()

	nc, js, err := bus.Connect(ctx, log, cfg.Config, "edgeflow-ingest",
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	// JetStream may answer later than the server: a NATS cluster elects its meta leader
	// after its servers accept clients, and drops API requests until then. Ask again,
	// each attempt bounded, for as long as the connection may take.
	ensureCtx, cancelEnsure := context.WithTimeout(ctx, cfg.ConnectTimeout)
	var lastErr error
	err = retry.Do(ensureCtx, retry.Backoff{Max: 2 * time.Second}, func(ctx context.Context) error {
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		lastErr = bus.Ensure(attempt, js, cfg.Telemetry(), cfg.DeadLetter())
		return lastErr
	}, func(err error, wait time.Duration) {
		log.Warn("waiting for JetStream", "err", err, "retry_in", wait.Round(time.Millisecond))
	})
	cancelEnsure()
	if err != nil {
		return errors.Join(err, lastErr)
	}
	health.AddCheck("nats", bus.Ready(nc))

	// The stream's partition count, not ours: the two cannot disagree.
	partitions, err := bus.Partitions(ctx, js)
	if err != nil {
		return err
	}
	bridge := NewBridge(js, cfg.Limits(), BatchOptions{Partitions: partitions, Wait: cfg.BatchWait, Max: cfg.BatchMax},
		cfg.MaxInFlight, log, reg)
	health.AddCheck("jetstream", bridge.Ready)

	g, ctx := service.NewGroup(ctx)
	defer g.Wait(nil)
	// The bridge keeps working through the drain: it stops only when its
	// queue is empty or the drain timeout passes.
	drain := service.NewDrain(ctx, cfg.DrainTimeout)
	defer drain.Stop()
	bridgeDone := make(chan struct{})
	go func() { bridge.Run(drain.Context()); close(bridgeDone) }()

	mopts, err := mqttOptions(cfg, log, bridge)
	if err != nil {
		return err
	}
	client := mqtt.NewClient(mopts)
	health.AddCheck("mqtt", func(context.Context) error {
		if !client.IsConnectionOpen() {
			return errors.New("mqtt not connected")
		}
		return nil
	})
	g.Serve(log, cfg.HTTPAddr, service.Handler(health, reg))
	// ConnectRetry makes Connect keep trying in the background; the
	// OnConnect handler subscribes whenever a connection is made.
	client.Connect()
	log.Info("ingest running", "mqtt", secure.RedactURLs(cfg.MQTTURL), "filters", cfg.Filters(), "client_id", cfg.ClientID)

	<-ctx.Done()
	log.Info("draining", "timeout", cfg.DrainTimeout)
	bridge.Close()
	<-bridgeDone
	client.Disconnect(250)
	return g.Wait(drain.Err("unacknowledged messages stay with the broker"))
}

// mqttOptions configures paho for at-least-once: a stable client id with a
// persistent session (the broker keeps QoS 1 messages while ingest is away),
// manual acknowledgements (the bridge acks after JetStream did), and
// subscriptions renewed on every connection. A TLS URL (ssl://, tls://,
// mqtts://) connects with TLS 1.2 or later, verified with EDGEFLOW_MQTT_TLS_CA.
func mqttOptions(cfg Config, log *slog.Logger, bridge *Bridge) (*mqtt.ClientOptions, error) {
	tc, err := cfg.MQTTTLS()
	if err != nil {
		return nil, err
	}
	o := mqtt.NewClientOptions().
		AddBroker(cfg.MQTTURL).
		SetClientID(cfg.ClientID).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetKeepAlive(15 * time.Second).
		SetMessageChannelDepth(uint(cfg.MaxInFlight)).
		SetCustomOpenConnectionFn(dialBroker).
		// Messages of the persistent session can arrive before the
		// subscriptions are renewed; they go to the bridge too.
		SetDefaultPublishHandler(bridge.Handle)
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	if cfg.MQTTUsername != "" {
		o.SetUsername(cfg.MQTTUsername)
		o.SetPassword(cfg.MQTTPassword)
	}
	filters := cfg.Filters()
	o.SetOnConnectHandler(func(c mqtt.Client) {
		subs := make(map[string]byte, len(filters))
		for _, f := range filters {
			subs[f] = 1
		}
		// Not in this callback's goroutine: paho delivers the SUBACK on the
		// same connection, and a retry must not hold up the client.
		go func() {
			b := retry.Backoff{}
			for c.IsConnectionOpen() {
				// No per-filter callback: every message goes to the default
				// handler (bridge.Handle), and paho then skips matching each
				// message against every filter (docs/performance.md,
				// "Figures behind the code").
				tok := c.SubscribeMultiple(subs, nil)
				if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
					log.Info("mqtt connected and subscribed", "filters", filters)
					return
				}
				log.Error("mqtt subscribe failed; retrying", "filters", filters, "err", tok.Error())
				time.Sleep(b.Next())
			}
		}()
	})
	o.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		log.Warn("mqtt connection lost", "err", err)
	})
	return o, nil
}
