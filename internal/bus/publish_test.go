package bus

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publishes that fail (here: no stream yet) are published again, in order,
// each acknowledged once, and a publish started after the failure waits
// for Release, so it lands after them.
func TestPublisherRepublishesInOrder(t *testing.T) {
	t.Parallel()
	_, js := connect(t, startNATS(t))
	ctx := t.Context()
	msg := func(i int) *nats.Msg {
		m := nats.NewMsg("order.x")
		m.Data = []byte(strconv.Itoa(i))
		m.Header.Set(jetstream.MsgIDHeader, "m"+strconv.Itoa(i))
		return m
	}
	var failed []string
	p := &Publisher{JS: js, Failed: func(m *nats.Msg, err error) {
		failed = append(failed, string(m.Data))
		if len(failed) == 1 {
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDER", Subjects: []string{"order.>"}}); err != nil {
				t.Error(err)
			}
		}
	}}
	msgs := []*nats.Msg{msg(1), msg(2), msg(3)}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	if err := p.PublishAsync(ctx, msgs, futures); err != nil {
		t.Fatal(err)
	}
	var acked []int
	if err := p.Settle(ctx, msgs, futures, func(i int, ack *jetstream.PubAck) { acked = append(acked, i) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1", "2", "3"}; !slices.Equal(failed, want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	if want := []int{0, 1, 2}; !slices.Equal(acked, want) {
		t.Fatalf("acked %v, want %v", acked, want)
	}

	// Held until Release: a newer publish waits.
	later := []*nats.Msg{msg(4)}
	laterFutures := make([]jetstream.PubAckFuture, 1)
	var wg sync.WaitGroup
	published := make(chan struct{})
	wg.Go(func() {
		if err := p.PublishAsync(ctx, later, laterFutures); err != nil {
			t.Error(err)
		}
		close(published)
	})
	select {
	case <-published:
		t.Fatal("a publish started before Release")
	case <-time.After(100 * time.Millisecond):
	}
	p.Release()
	wg.Wait()
	if err := p.Settle(ctx, later, laterFutures, nil); err != nil {
		t.Fatal(err)
	}
	p.Release() // nothing failed: does nothing

	s, err := js.Stream(ctx, "ORDER")
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for seq := uint64(1); seq <= 4; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		stored = append(stored, string(m.Data))
	}
	if want := []string{"1", "2", "3", "4"}; !slices.Equal(stored, want) {
		t.Fatalf("stored %v, want %v", stored, want)
	}
}

// Without a failure nothing is held: publishes and settles go straight.
func TestPublisherAcksInOrder(t *testing.T) {
	t.Parallel()
	_, js := connect(t, startNATS(t))
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDER", Subjects: []string{"order.>"}}); err != nil {
		t.Fatal(err)
	}
	p := &Publisher{JS: js, Failed: func(m *nats.Msg, err error) { t.Errorf("%s failed: %v", m.Data, err) }}
	msgs := make([]*nats.Msg, 100)
	for i := range msgs {
		msgs[i] = &nats.Msg{Subject: "order.x", Data: []byte(strconv.Itoa(i))}
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	if err := p.PublishAsync(ctx, msgs, futures); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	if err := p.Settle(ctx, msgs, futures, func(i int, ack *jetstream.PubAck) { seqs = append(seqs, ack.Sequence) }); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != len(msgs) || !slices.IsSorted(seqs) {
		t.Fatalf("acknowledged sequences %v", seqs)
	}
	// Not held: this publish goes at once.
	if err := p.PublishAsync(ctx, msgs[:1], futures[:1]); err != nil {
		t.Fatal(err)
	}
}
