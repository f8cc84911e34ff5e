// Package kvmirror keeps an in-memory copy of a NATS key-value bucket,
// updated by a watch, and changes keys by compare-and-set on their revision.
// Replicas of the notifier share their state this way: each reads its own
// copy (no request per evaluation), and a write based on a stale copy fails
// with ErrConflict instead of overwriting another replica's change.
package kvmirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/retry"
)

// ErrConflict reports that the key changed since the revision a write was
// based on: read it again (Load) and decide again.
var ErrConflict = errors.New("key changed since it was read")

type entry[T any] struct {
	v   T
	rev uint64
}

// Mirror is the local copy of one bucket whose values are JSON of type T.
type Mirror[T any] struct {
	kv    jetstream.KeyValue
	log   *slog.Logger
	mu    sync.RWMutex
	m     map[string]entry[T]
	ready chan struct{}
	once  sync.Once
}

// New returns an empty mirror of kv; Run fills it and keeps it current.
func New[T any](kv jetstream.KeyValue, log *slog.Logger) *Mirror[T] {
	return &Mirror[T]{kv: kv, log: log, m: map[string]entry[T]{}, ready: make(chan struct{})}
}

// Ready is closed once the mirror holds every key the bucket held when Run
// started.
func (m *Mirror[T]) Ready() <-chan struct{} { return m.ready }

// Run watches the bucket until ctx ends, restarting the watch if it fails.
func (m *Mirror[T]) Run(ctx context.Context) {
	b := retry.Backoff{Max: 2 * time.Second}
	for ctx.Err() == nil {
		err := m.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := b.Next()
		m.log.Warn("kv watch ended; restarting", "bucket", m.kv.Bucket(), "err", err, "wait", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (m *Mirror[T]) watch(ctx context.Context) error {
	w, err := m.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", m.kv.Bucket(), err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				m.once.Do(func() { close(m.ready) })
				continue
			}
			m.apply(e)
		}
	}
}

func (m *Mirror[T]) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		m.mu.Lock()
		if cur, ok := m.m[e.Key()]; ok && cur.rev <= e.Revision() {
			delete(m.m, e.Key())
		}
		m.mu.Unlock()
		return
	}
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		m.log.Error("undecodable kv value skipped", "bucket", m.kv.Bucket(), "key", e.Key(), "rev", e.Revision(), "err", err)
		return
	}
	m.set(e.Key(), v, e.Revision())
}

// set records a value unless the mirror already holds a newer revision (a
// write of our own can be seen before the watch delivers older ones).
func (m *Mirror[T]) set(key string, v T, rev uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.m[key]; ok && cur.rev >= rev {
		return
	}
	m.m[key] = entry[T]{v, rev}
}

// Get returns the mirrored value of key and its revision; revision 0 means
// the key does not exist.
func (m *Mirror[T]) Get(key string) (T, uint64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.m[key]
	return e.v, e.rev
}

// Load reads key from the bucket itself (after a conflict, the mirror may
// not have caught up yet) and updates the mirror.
func (m *Mirror[T]) Load(ctx context.Context, key string) (T, uint64, error) {
	var v T
	e, err := m.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return v, 0, nil
	}
	if err != nil {
		return v, 0, fmt.Errorf("get %s %s: %w", m.kv.Bucket(), key, err)
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return v, 0, fmt.Errorf("decode %s %s: %w", m.kv.Bucket(), key, err)
	}
	m.set(key, v, e.Revision())
	return v, e.Revision(), nil
}

// Save writes v to key if the key is still at revision rev (0: if it does
// not exist), and returns the new revision. It returns ErrConflict when the
// key changed in between.
func (m *Mirror[T]) Save(ctx context.Context, key string, v T, rev uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s %s: %w", m.kv.Bucket(), key, err)
	}
	var next uint64
	if rev == 0 {
		next, err = m.kv.Create(ctx, key, data)
	} else {
		next, err = m.kv.Update(ctx, key, data, rev)
	}
	if bus.IsConflict(err) {
		return 0, fmt.Errorf("save %s %s at revision %d: %w", m.kv.Bucket(), key, rev, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("save %s %s: %w", m.kv.Bucket(), key, err)
	}
	m.set(key, v, next)
	return next, nil
}

// Each calls fn for a snapshot of every key, in no particular order.
func (m *Mirror[T]) Each(fn func(key string, v T, rev uint64)) {
	m.mu.RLock()
	snap := make(map[string]entry[T], len(m.m))
	for k, e := range m.m {
		snap[k] = e
	}
	m.mu.RUnlock()
	for k, e := range snap {
		fn(k, e.v, e.rev)
	}
}
