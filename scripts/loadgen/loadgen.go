package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeflow/edgeflow/internal/secure"
)

// Timeouts of one connection.
const (
	// connectTimeout bounds the initial CONNECT; the generator fails fast
	// rather than retrying a broker that is not there.
	connectTimeout = 10 * time.Second
	// maxReconnectInterval caps paho's reconnect back-off (10 minutes by
	// default), so a broker restart costs seconds, not minutes, of a run.
	maxReconnectInterval = 2 * time.Second
	// disconnectQuiesce is how long Disconnect lets paho finish writing.
	disconnectQuiesce = 250 // ms
)

// ErrConnect wraps a failure to connect at start.
var ErrConnect = errors.New("connect to broker")

// Generator publishes synthetic sensor messages at a controlled rate and
// counts exactly what the broker acknowledged.
type Generator struct {
	cfg Config
	log *slog.Logger
	// newClient makes the MQTT client; tests may swap it.
	newClient func(*mqtt.ClientOptions) mqtt.Client
	// tls is the broker's TLS configuration; nil for a plain broker.
	tls *tls.Config

	connectionLosses atomic.Int64
	// progress is where the rate line goes; the zero value writes none.
	progress Progress
}

// New validates cfg and returns a Generator. log may be nil.
func New(cfg Config, log *slog.Logger) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tc, err := cfg.TLS()
	if err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, log: log, newClient: mqtt.NewClient, tls: tc}, nil
}

// clientOptions are the options of publisher i's connection.
//
// CleanSession(false) with a stable client id and paho's store make paho
// resend unacknowledged QoS 1/2 messages after a reconnect, so a broker
// restart delays messages instead of losing them. (Paho resends from its
// store after an automatic reconnect whatever CleanSession says; the flag
// matters for the initial Connect and for the broker's side of the session.)
// ResumeSubs only concerns subscriptions, of which a publisher has none.
//
// MaxResumePubInFlight is left unset: with it paho 1.5.1 races on c.stop
// between resume and the next reconnect (the race detector fails tests), and
// the resend is bounded by MaxInFlight anyway.
func (g *Generator) clientOptions(p *publisher) *mqtt.ClientOptions {
	id := fmt.Sprintf("%s-%d", g.cfg.ClientPrefix, p.index)
	log := g.log.With("client", id)
	o := mqtt.NewClientOptions().
		AddBroker(g.cfg.Broker).
		SetClientID(id).
		SetCleanSession(false).
		SetResumeSubs(true).
		SetOrderMatters(false).
		SetStore(p.store).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(maxReconnectInterval).
		SetConnectTimeout(connectTimeout).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.lost.Store(true)
			g.connectionLosses.Add(1)
			log.Warn("connection lost; paho reconnects and resends unacknowledged messages", "err", err)
		}).
		SetReconnectingHandler(func(mqtt.Client, *mqtt.ClientOptions) {
			log.Info("reconnecting")
		})
	if g.tls != nil {
		o.SetTLSConfig(g.tls)
	}
	if g.cfg.Username != "" {
		o.SetUsername(g.cfg.Username)
		o.SetPassword(g.cfg.Password)
	}
	return o
}

// Run connects, publishes until Count messages were attempted, Duration
// passed or ctx ended, waits up to DrainTimeout for outstanding
// acknowledgements and returns the report. An error means the run could not
// start; failed publishes are in the report, not in the error.
func (g *Generator) Run(ctx context.Context) (Report, error) {
	cfg := g.cfg
	g.connectionLosses.Store(0)
	pubs := make([]*publisher, cfg.Publishers)
	for i := range pubs {
		p := newPublisher(&g.cfg, i)
		p.client = g.newClient(g.clientOptions(p))
		pubs[i] = p
	}
	disconnect := func() {
		var wg sync.WaitGroup
		for _, p := range pubs {
			wg.Go(func() { p.client.Disconnect(disconnectQuiesce) })
		}
		wg.Wait()
	}
	if err := g.connect(ctx, pubs); err != nil {
		disconnect()
		return Report{}, err
	}

	genCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		genCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	start := time.Now()
	var draining atomic.Bool
	stopProgress := g.startProgress(ctx, pubs, &draining)
	// Each publisher gets the share of the rate its devices are of all devices.
	var wg sync.WaitGroup
	for _, p := range pubs {
		p.pacer = newPacer(cfg.Rate*float64(len(p.devices))/float64(cfg.Devices), start)
		if p.qos0 != nil {
			go p.waitQoS0() // drain ends it
		}
		wg.Go(func() { p.run(genCtx) })
	}
	wg.Wait()
	published := time.Since(start)
	draining.Store(true)

	// One deadline for all publishers; a closed channel, not a timer's,
	// because every drain must see it.
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancelDrain()
	for _, p := range pubs {
		if !p.drain(drainCtx.Done()) {
			g.log.Warn("drain timeout: unacknowledged messages count as failed", "client", fmt.Sprintf("%s-%d", cfg.ClientPrefix, p.index), "timeout", cfg.DrainTimeout)
		}
	}
	elapsed := time.Since(start)
	stopProgress()
	disconnect()
	return g.report(pubs, start, published, elapsed), nil
}

// connect connects every publisher in parallel.
func (g *Generator) connect(ctx context.Context, pubs []*publisher) error {
	errs := make([]error, len(pubs))
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() {
			tok := p.client.Connect()
			select {
			case <-tok.Done():
				if err := tok.Error(); err != nil {
					errs[i] = fmt.Errorf("%w %s as %s-%d: %w", ErrConnect, secure.RedactURLs(g.cfg.Broker), g.cfg.ClientPrefix, i, err)
				}
			case <-time.After(connectTimeout + time.Second):
				errs[i] = fmt.Errorf("%w %s as %s-%d: timed out after %v", ErrConnect, g.cfg.Broker, g.cfg.ClientPrefix, i, connectTimeout)
			case <-ctx.Done():
				errs[i] = fmt.Errorf("%w %s: %w", ErrConnect, g.cfg.Broker, ctx.Err())
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the others almost always fail the same way
		}
	}
	return nil
}
