package bus

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// Leaf node credentials the test hub demands.
const (
	leafUser     = devenv.TestLeafUser
	leafPassword = devenv.TestLeafPassword
)

func startHub(t testing.TB) *devenv.NATSHub {
	t.Helper()
	return startHubTLS(t, nil)
}

// startHubTLS starts a hub whose leaf node listener uses tls, if not nil.
func startHubTLS(t testing.TB, tls *devenv.NATSTLS) *devenv.NATSHub {
	t.Helper()
	h, err := devenv.StartNATSHub(t.TempDir(), HubDomain, tls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// logLines collects a server's log.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+fmt.Sprintf(format, v...))
}
func (l *logLines) Noticef(f string, v ...any) { l.add("INF", f, v...) }
func (l *logLines) Warnf(f string, v ...any)   { l.add("WRN", f, v...) }
func (l *logLines) Fatalf(f string, v ...any)  { l.add("FTL", f, v...) }
func (l *logLines) Errorf(f string, v ...any)  { l.add("ERR", f, v...) }
func (l *logLines) Debugf(f string, v ...any)  {}
func (l *logLines) Tracef(f string, v ...any)  {}

// find returns the first line holding s.
func (l *logLines) find(s string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(strings.ToLower(line), strings.ToLower(s)) {
			return line
		}
	}
	return ""
}

// startSite starts a site's NATS, domain = name, a leaf node of remote.
func startSite(t testing.TB, name, remote string) (*server.Server, *logLines) {
	t.Helper()
	return startSiteTLS(t, name, remote, nil)
}

// startSiteTLS starts a site whose remote uses tls, if not nil.
func startSiteTLS(t testing.TB, name, remote string, tls *secure.TLSFiles) (*server.Server, *logLines) {
	t.Helper()
	logs := &logLines{}
	s, err := devenv.StartNATSSite(t.TempDir(), name, remote, SiteLocalSubjects, tls, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s, logs
}

// startProxy starts the cable between a site and target, the hub's leaf
// node port.
func startProxy(t testing.TB, target string) *devenv.LinkProxy {
	t.Helper()
	p, err := devenv.StartLinkProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// windowPublisher publishes window-sized messages on a site's AGGREGATES
// until stopped, numbered 1, 2, ... in the payload. It sets no Nats-Msg-Id,
// so that nothing but JetStream's sourcing keeps the hub's copy exact.
type windowPublisher struct {
	n    atomic.Uint64
	stop chan struct{}
	done chan error
}

// publishWindows publishes perTick windows every 10 ms.
func publishWindows(t *testing.T, js jetstream.JetStream, perTick int) *windowPublisher {
	p := &windowPublisher{stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				p.done <- nil
				return
			case <-tick.C:
			}
			for range perTick {
				n := p.n.Load() + 1
				// The same device names at every site: the hub must keep
				// them apart by the site's name alone.
				subj := fmt.Sprintf("aggregates.10s.lab.t%d", n%16)
				if _, err := js.PublishAsync(subj, windowPayload(n)); err != nil {
					p.done <- err
					return
				}
				p.n.Store(n)
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(10 * time.Second):
				p.done <- fmt.Errorf("publish acknowledgements stalled at %d", p.n.Load())
				return
			}
		}
	}()
	return p
}

func (p *windowPublisher) finish(t *testing.T) uint64 {
	t.Helper()
	close(p.stop)
	if err := <-p.done; err != nil {
		t.Fatal(err)
	}
	return p.n.Load()
}

// windowPayload is a closed window of the size the processor writes (three
// metrics), numbered n.
func windowPayload(n uint64) []byte {
	return fmt.Appendf(nil, `{"site":"lab","device":"t%d","window":"10s","start":%d,"end":%d,"n":%d,`+
		`"metrics":{"temperature":{"count":10,"sum":215,"min":21,"max":22,"mean":21.5,"first":21,"last":22},`+
		`"humidity":{"count":10,"sum":480,"min":47,"max":49,"mean":48,"first":47,"last":49},`+
		`"pressure":{"count":10,"sum":10132,"min":1013,"max":1013.4,"mean":1013.2,"first":1013,"last":1013.4}},"received":%d}`,
		n%16, 1732560000000+n*10000, 1732560010000+n*10000, n, 1732560010000+n*10000)
}

// readStream reads every message of stream under filter, in stream order.
func readStream(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, filter string) []jetstream.Msg {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for {
		batch, err := cons.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			n++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch %s %s: %v", stream, filter, err)
		}
		if n == 0 {
			return msgs
		}
	}
}

// connectURL connects a plain client.
func connectURL(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
