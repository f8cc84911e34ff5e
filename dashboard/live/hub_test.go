package live_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgeflow/edgeflow/dashboard/live"
)

func newServer(t *testing.T, h *live.Hub, topics ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := h.Subscribe(topics...)
		defer h.Unsubscribe(c)
		_ = h.Stream(r.Context(), w, c)
	}))
	t.Cleanup(func() { h.Close(); srv.Close() })
	return srv
}

// readEvents reads SSE events of one connection into a channel.
func readEvents(t *testing.T, ctx context.Context, url string) <-chan string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	out := make(chan string, 1024)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
		var event string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				out <- event + " " + strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

func waitClients(t *testing.T, h *live.Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.Clients() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d clients, want %d", h.Clients(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFrame(t *testing.T) {
	if got := string(live.Frame("devices", []byte(`{"a":1}`))); got != "event: devices\ndata: {\"a\":1}\n\n" {
		t.Fatalf("Frame = %q", got)
	}
}

// Every client gets every frame of its topics, in order, and only those.
func TestManyClientsGetTheirTopics(t *testing.T) {
	h := live.NewHub(live.Options{Buffer: 256}, nil)
	srvAll := newServer(t, h, live.TopicDevices, live.TopicAlerts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const clients = 100
	streams := make([]<-chan string, clients)
	for i := range streams {
		streams[i] = readEvents(t, ctx, srvAll.URL)
	}
	waitClients(t, h, clients)
	for i := range 50 {
		h.Publish(live.TopicDevices, live.Frame("devices", fmt.Appendf(nil, "%d", i)))
		h.Publish(live.TopicPipeline, live.Frame("pipeline", []byte("nobody")))
	}
	h.Publish(live.TopicAlerts, live.Frame("alert", []byte("last")))
	for i, s := range streams {
		for want := range 50 {
			if got := <-s; got != fmt.Sprintf("devices %d", want) {
				t.Fatalf("client %d: got %q, want devices %d", i, got, want)
			}
		}
		if got := <-s; got != "alert last" {
			t.Fatalf("client %d: got %q after the batch, want the alert", i, got)
		}
	}
}

// A client that stops reading loses its oldest frames (counted), never
// holds more than its buffer, and does not slow the others; when it reads
// again it is told to resync first.
func TestSlowClientBoundedAndDropsOldest(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := live.NewMetrics(reg)
	h := live.NewHub(live.Options{Buffer: 8, WriteTimeout: 2 * time.Second}, m)
	srv := newServer(t, h, live.TopicDevices)

	// The slow client: a raw connection that sends its request and never
	// reads, so the server's socket buffer fills and its writes block.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fast := readEvents(t, ctx, srv.URL)
	waitClients(t, h, 2)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	payload := strings.Repeat("x", 64<<10) // 64 KiB frames: the socket fills after a few
	const frames = 400                     // 25 MiB in all
	var fastGot sync.WaitGroup
	fastN := 0
	fastGot.Go(func() {
		for ev := range fast {
			if strings.HasPrefix(ev, "devices ") {
				fastN++
			}
			if strings.HasPrefix(ev, fmt.Sprintf(`devices {"i":%d,`, frames-1)) {
				return
			}
		}
		t.Error("fast client's stream ended before the last frame")
	})
	for i := range frames {
		h.Publish(live.TopicDevices, live.Frame("devices", []byte(fmt.Sprintf(`{"i":%d,"p":"%s"}`, i, payload))))
		time.Sleep(time.Millisecond) // a steady stream, not one burst
	}
	fastGot.Wait()
	if fastN < frames*9/10 {
		t.Errorf("fast client got %d of %d frames: the slow one slowed it down", fastN, frames)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	dropped := testutil.ToFloat64(m.Dropped)
	if dropped < frames/2 { // all but the buffer and what the sockets took
		t.Fatalf("dropped %v frames for a client that read nothing, want most of %d", dropped, frames)
	}
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("slow client: %d frames of 64 KiB published, %v dropped, fast client got %d, heap growth %d KiB", frames, dropped, fastN, growth>>10)
	if growth > 8<<20 {
		t.Fatalf("heap grew %d MiB with one stuck client: the buffer is not bounded", growth>>20)
	}
	// The write deadline ends the stuck client.
	waitClients(t, h, 1)
}

func TestResyncAfterDrops(t *testing.T) {
	h := live.NewHub(live.Options{Buffer: 4}, nil)
	c := h.Subscribe(live.TopicDevices)
	for i := range 10 {
		h.Publish(live.TopicDevices, live.Frame("devices", fmt.Appendf(nil, "%d", i)))
	}
	if c.Queued() != 4 || c.Dropped() != 6 {
		t.Fatalf("queued %d dropped %d, want 4 and 6", c.Queued(), c.Dropped())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = h.Stream(r.Context(), w, c) }))
	defer srv.Close()
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := readEvents(t, ctx, srv.URL)
	// The next frame is published once the stream has taken one from the
	// queue: published earlier, it would itself overflow the full buffer.
	want := []string{"resync {}", "devices 6", "devices 7", "devices 8", "devices 9", "devices 10"}
	for i, w := range want {
		if got := <-s; got != w {
			t.Fatalf("got %q, want %q", got, w)
		}
		if i == 1 {
			h.Publish(live.TopicDevices, live.Frame("devices", []byte("10")))
		}
	}
}

// A browser that goes away is unsubscribed: nothing is kept for it.
func TestDisconnectUnsubscribes(t *testing.T) {
	h := live.NewHub(live.Options{}, nil)
	srv := newServer(t, h, live.TopicDevices)
	ctx, cancel := context.WithCancel(context.Background())
	_ = readEvents(t, ctx, srv.URL)
	_ = readEvents(t, context.Background(), srv.URL)
	waitClients(t, h, 2)
	cancel()
	waitClients(t, h, 1)
	if !h.Wanted(live.TopicDevices) {
		t.Fatal("topic unwanted while a client remains")
	}
}

// Close (SIGTERM) ends every stream with a bye, promptly.
func TestCloseDrainsStreams(t *testing.T) {
	h := live.NewHub(live.Options{}, nil)
	srv := newServer(t, h, live.TopicDevices)
	s1 := readEvents(t, context.Background(), srv.URL)
	s2 := readEvents(t, context.Background(), srv.URL)
	waitClients(t, h, 2)
	start := time.Now()
	h.Close()
	for _, s := range []<-chan string{s1, s2} {
		if got := <-s; got != "bye {}" {
			t.Fatalf("got %q, want bye", got)
		}
		if _, ok := <-s; ok {
			t.Fatal("stream still open after bye")
		}
	}
	waitClients(t, h, 0)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("drain took %s", d)
	}
	// A stream that starts after Close is refused.
	resp, err := http.Get(srv.URL)
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(body) > 0 {
			t.Fatalf("stream after Close sent %q", body)
		}
	}
}
