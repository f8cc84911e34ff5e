package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/retry"
)

// Ownership shares the TELEMETRY partitions among the live replicas. Each
// replica heartbeats its membership; every replica sorts the live members and
// partition p belongs to members[p mod len(members)]. A replica claims what
// is its own with a KV Create on lease.{p} (which fails while another holds
// it), renews its leases with a compare-and-set Update, and hands back a
// partition that is no longer its own after a final flush. A partition thus
// has at most one writer at a time: a worker flushes only while its lease is
// surely held (lease.held), and the next owner claims the checkpoint as it
// loads it, so a replica that stalled past its lease fails its next
// checkpoint and cannot purge what the new owner has yet to read.
type Ownership struct {
	kv    jetstream.KeyValue
	id    string
	n     int
	ttl   time.Duration
	drain time.Duration
	log   *slog.Logger
	start func(ctx context.Context, p int, stop <-chan struct{}, held func() bool) error

	owned    map[int]*lease
	stopping map[int]*lease // lost or released, worker not yet returned
	ownedGa  prometheus.Gauge
	stalls   *Stalls[int]
	// failed holds the partitions whose worker ended with an error here:
	// each is claimed again no sooner than its backoff allows, so an error
	// that cannot succeed on retry costs a claim every few seconds, not a
	// busy loop, and keeps the partition stalled (not ready) meanwhile.
	failed map[int]*restart
}

// restart is the backoff of a partition whose worker keeps failing.
type restart struct {
	backoff retry.Backoff
	at      time.Time
}

type lease struct {
	rev    uint64
	until  atomic.Pointer[time.Time] // held surely until then
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan error
}

// renewed records a claim or renewal sent at sent. The bucket expires the
// lease a TTL after the server stored it, which is no earlier than a TTL after
// it was sent: until then no other replica can claim the partition.
func (l *lease) renewed(sent time.Time, ttl time.Duration) {
	until := sent.Add(ttl)
	l.until.Store(&until)
}

// held reports whether the lease is surely still this replica's.
func (l *lease) held() bool { return time.Now().Before(*l.until.Load()) }

// NewOwnership returns the coordinator; start runs one partition's worker
// until stop is closed (flush, then return) or its context ends (abort), and
// writes nothing once held reports the lease may have lapsed.
// A partition whose worker ended with an error is stalled (stalls) until a
// worker of it flushes again.
func NewOwnership(kv jetstream.KeyValue, id string, partitions int, ttl, drain time.Duration, log *slog.Logger,
	reg prometheus.Registerer, stalls *Stalls[int], start func(ctx context.Context, p int, stop <-chan struct{}, held func() bool) error) *Ownership {
	o := &Ownership{kv: kv, id: id, n: partitions, ttl: ttl, drain: drain, log: log, start: start, owned: map[int]*lease{}, stopping: map[int]*lease{},
		stalls: stalls, failed: map[int]*restart{},
		ownedGa: prometheus.NewGauge(prometheus.GaugeOpts{Name: "edgeflow_processor_partitions_owned",
			Help: "TELEMETRY partitions this replica processes."})}
	reg.MustRegister(o.ownedGa)
	return o
}

// Run rebalances every third of the lease TTL until ctx ends, then hands
// every partition back (each worker flushes and checkpoints first).
func (o *Ownership) Run(ctx context.Context) {
	tick := time.NewTicker(o.ttl / 3)
	defer tick.Stop()
	for {
		if err := o.rebalance(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("rebalance", "err", err)
		}
		select {
		case <-ctx.Done():
			o.releaseAll()
			return
		case <-tick.C:
		}
	}
}

// Owned lists the partitions currently held.
func (o *Ownership) Owned() []int {
	out := make([]int, 0, len(o.owned))
	for p := range o.owned {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (o *Ownership) rebalance(ctx context.Context) error {
	defer func() { o.ownedGa.Set(float64(len(o.owned))) }()
	for p, l := range o.stopping {
		select {
		case <-l.done:
			delete(o.stopping, p)
		default:
		}
	}
	// Workers that ended on their own (lost ownership, fatal error) are gone.
	for p, l := range o.owned {
		select {
		case err := <-l.done:
			l.cancel()
			delete(o.owned, p)
			if errors.Is(err, errLostOwnership) {
				o.stalls.Clear(p)
				o.log.Warn("partition worker ended", "partition", p, "err", err)
				continue
			}
			_ = o.kv.Delete(ctx, leaseKey(p), jetstream.LastRevision(l.rev))
			r := o.failed[p]
			if r == nil {
				r = &restart{backoff: retry.Backoff{Initial: time.Second, Max: time.Minute}}
				o.failed[p] = r
			}
			wait := r.backoff.Next()
			r.at = time.Now().Add(wait)
			o.stalls.Fail(p, "worker", err)
			o.log.Error("partition worker ended; claiming it again after a backoff", "partition", p, "err", err, "wait", wait)
		default:
		}
	}
	// Renew what is held; whatever cannot be renewed was taken over.
	for p, l := range o.owned {
		sent := time.Now()
		rev, err := o.kv.Update(ctx, leaseKey(p), []byte(o.id), l.rev)
		if err != nil {
			if bus.IsConflict(err) {
				// Not waited for here: a worker stuck on a dead connection
				// must not hold up the renewal of the other leases.
				o.log.Warn("lease lost; stopping partition", "partition", p)
				o.stalls.Clear(p)
				l.cancel()
				l.done = forward(l.done)
				o.stopping[p] = l
				delete(o.owned, p)
				continue
			}
			return fmt.Errorf("renew lease %d: %w", p, err)
		}
		l.rev = rev
		l.renewed(sent, o.ttl)
		if o.failed[p] != nil && !o.stalls.Stalled(p) {
			delete(o.failed, p) // its worker flushed since it was started again
		}
	}
	if _, err := o.kv.Put(ctx, memberKey(o.id), []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	members, err := o.members(ctx)
	if err != nil {
		return err
	}
	mine := assign(o.n, members, o.id)
	for p, l := range o.owned {
		if !mine[p] {
			o.release(ctx, p, l)
		}
	}
	for p := range o.failed {
		if !mine[p] {
			delete(o.failed, p)
			o.stalls.Clear(p)
		}
	}
	for p := range mine {
		if _, ok := o.owned[p]; ok {
			continue
		}
		if _, ok := o.stopping[p]; ok {
			continue // its last worker here has not returned yet
		}
		if r := o.failed[p]; r != nil && time.Now().Before(r.at) {
			continue
		}
		sent := time.Now()
		rev, err := o.kv.Create(ctx, leaseKey(p), []byte(o.id))
		if err != nil {
			if !bus.IsConflict(err) {
				o.log.Warn("claim partition", "partition", p, "err", err)
			}
			continue // still held by its previous owner until it hands it back or its lease expires
		}
		wctx, cancel := context.WithCancel(context.Background())
		l := &lease{rev: rev, cancel: cancel, stop: make(chan struct{}), done: make(chan error, 1)}
		l.renewed(sent, o.ttl)
		o.owned[p] = l
		o.log.Info("partition claimed", "partition", p, "members", len(members))
		// The channel is captured: rebalance replaces l.done (forward) when
		// the lease is lost while this goroutine may still be running.
		done := l.done
		go func() { done <- o.start(wctx, p, l.stop, l.held) }()
	}
	return nil
}

// release stops a worker gracefully and deletes its lease so the next owner
// need not wait for the TTL.
func (o *Ownership) release(ctx context.Context, p int, l *lease) {
	close(l.stop)
	var err error
	select {
	case err = <-l.done:
	case <-time.After(o.ttl / 2):
		// The flush is stuck (InfluxDB down): abort it rather than let the
		// other leases lapse; the next owner replays from the checkpoint.
		l.cancel()
		err = <-l.done
	}
	l.cancel()
	delete(o.owned, p)
	o.stalls.Clear(p)
	if err == nil || !errors.Is(err, errLostOwnership) {
		if derr := o.kv.Delete(ctx, leaseKey(p), jetstream.LastRevision(l.rev)); derr != nil {
			o.log.Warn("release lease", "partition", p, "err", derr)
		}
	}
	o.log.Info("partition released", "partition", p, "err", err)
}

func (o *Ownership) releaseAll() {
	ctx, cancel := context.WithTimeout(context.Background(), o.drain)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range o.owned {
		close(l.stop)
		stop := context.AfterFunc(ctx, l.cancel) // past the drain timeout, abort
		defer stop()
	}
	for p, l := range o.owned {
		wg.Go(func() {
			err := <-l.done
			l.cancel()
			if err == nil {
				dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer dcancel()
				_ = o.kv.Delete(dctx, leaseKey(p), jetstream.LastRevision(l.rev))
			}
		})
	}
	wg.Wait()
	for _, l := range o.stopping {
		<-l.done
	}
	// A fresh context: the drain one may have run out.
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer dcancel()
	_ = o.kv.Delete(dctx, memberKey(o.id))
	o.owned = map[int]*lease{}
	o.ownedGa.Set(0)
}

func (o *Ownership) members(ctx context.Context) ([]string, error) {
	lister, err := o.kv.ListKeysFiltered(ctx, "members.*")
	if err != nil {
		return nil, fmt.Errorf("list members: %w", err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, "members."))
	}
	if !slices.Contains(ids, o.id) {
		ids = append(ids, o.id)
	}
	slices.Sort(ids)
	return ids, nil
}

// assign is the partitions that belong to id among members (sorted).
func assign(partitions int, members []string, id string) map[int]bool {
	mine := map[int]bool{}
	i := slices.Index(members, id)
	if i < 0 {
		return mine
	}
	for p := i; p < partitions; p += len(members) {
		mine[p] = true
	}
	return mine
}

func leaseKey(p int) string      { return "lease." + strconv.Itoa(p) }
func memberKey(id string) string { return "members." + id }

// forward returns a channel that is closed once done yields, so both a
// finished and a pending worker can be polled without losing its result.
func forward(done chan error) chan error {
	out := make(chan error, 1)
	go func() { out <- <-done; close(out) }()
	return out
}
