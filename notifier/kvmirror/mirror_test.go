package kvmirror

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
)

type value struct {
	N int `json:"n"`
}

// Two mirrors of one bucket, as two replicas have: compare-and-set lets
// one writer win, and each sees the other's writes through its watch.
func TestMirrorCompareAndSet(t *testing.T) {
	ns, err := devenv.StartNATS(devenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "TEST"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "before", []byte(`{"n":7}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "garbage", []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	a, b := New[value](kv, slog.New(slog.DiscardHandler)), New[value](kv, slog.New(slog.DiscardHandler))
	go a.Run(ctx)
	go b.Run(ctx)
	<-a.Ready()
	<-b.Ready()
	if v, rev := a.Get("before"); v.N != 7 || rev == 0 {
		t.Fatalf("initial value %v rev %d", v, rev)
	}
	if _, rev := a.Get("garbage"); rev != 0 {
		t.Fatal("an undecodable value was mirrored")
	}

	// Both create the same key: one wins.
	rev, err := a.Save(ctx, "k", value{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Save(ctx, "k", value{2}, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
	// b reloads and updates on the fresh revision; a's stale update loses.
	v, brev, err := b.Load(ctx, "k")
	if err != nil || v.N != 1 || brev != rev {
		t.Fatalf("Load = %v %d %v", v, brev, err)
	}
	if _, err := b.Save(ctx, "k", value{3}, brev); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Save(ctx, "k", value{4}, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update = %v, want ErrConflict", err)
	}
	// a sees b's write through its watch.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, _ := a.Get("k"); v.N == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a never saw b's write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A deleted key disappears, and can be created again.
	if err := kv.Delete(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	for _, rev := a.Get("before"); rev != 0; _, rev = a.Get("before") {
		if time.Now().After(deadline) {
			t.Fatal("delete not mirrored")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := a.Save(ctx, "before", value{8}, 0); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	n := 0
	a.Each(func(string, value, uint64) { n++ })
	if n != 2 {
		t.Fatalf("Each saw %d keys, want 2", n)
	}
}
