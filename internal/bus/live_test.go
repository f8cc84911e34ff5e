package bus

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// A live batch sends each device's newest reading once, in the order the
// devices first appeared, split into messages within the server's max
// payload; a payload with a newline is not the wire form and is skipped;
// the batch is empty afterwards.
func TestLiveBatchSendsNewestPerDeviceWithinMaxPayload(t *testing.T) {
	s, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: t.TempDir(), MaxPayload: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(LiveSubjects)
	if err != nil {
		t.Fatal(err)
	}

	var b LiveBatch
	b.Add("lab", "t1", []byte(`{"v":1}`))
	b.Add("lab", "t2", []byte(`{"v":2}`))
	b.Add("lab", "t1", []byte(`{"v":3}`))               // t1's newest, in t1's place
	b.Add("lab", "t3", []byte("{\n}"))                  // not the wire form
	big := `{"pad":"` + strings.Repeat("x", 600) + `"}` // two do not fit one message
	b.Add("yard", "a", []byte(big))
	b.Add("yard", "b", []byte(big))
	b.Add("yard", "huge", []byte(`{"pad":"`+strings.Repeat("y", 2000)+`"}`)) // fits no message
	if b.Len() != 5 {
		t.Fatalf("Len = %d, want 5 (t3 skipped)", b.Len())
	}
	if err := b.Publish(nc, LiveSubject("3")); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Fatalf("Len after Publish = %d", b.Len())
	}
	if err := b.Publish(nc, LiveSubject("3")); err != nil { // nothing to send
		t.Fatal(err)
	}

	var got []string
	for range 2 { // t1, t2 and a; then b (huge fits none)
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		if m.Subject != "live.3" || len(m.Data) > 1024 {
			t.Fatalf("message on %s of %d bytes", m.Subject, len(m.Data))
		}
		reading.EachInBatch(m.Data, func(data []byte) bool { got = append(got, string(data)); return true })
	}
	if m, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("a third message: %q", m.Data)
	}
	want := []string{`{"v":3}`, `{"v":2}`, big, big}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("readings sent:\n%q\nwant\n%q", got, want)
	}
}
