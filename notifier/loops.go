package main

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeflow/edgeflow/internal/retry"
)

// The restarts of a loop that ended are spaced by a retry.Backoff: a
// consumer that was deleted is recreated at the first attempt, after about
// a second, and a server that keeps ending pulls costs a request every
// 10 s at most.
const (
	restartInitial = time.Second
	restartMax     = 10 * time.Second
)

var (
	errLoopStarting = errors.New("starting")
	// errLoopEnded is the error of a loop that returned by itself: its
	// iterator closed without an error of its own.
	errLoopEnded = errors.New("its messages ended")
)

// Loops are the notifier's long-running consumers (the aggregates reader,
// one delivery loop per channel). Each runs under Run, which starts it
// again whenever it returns before its context ends (its consumer was
// deleted, the server ended its pull), and the replica is not ready while
// any of them is not running (Check).
type Loops struct {
	log      *slog.Logger
	restarts *prometheus.CounterVec
	mu       sync.Mutex
	m        map[string]*loopState
}

// loopState is one loop's status: nil while it runs.
type loopState struct {
	name string
	mu   sync.Mutex
	err  error
}

func (s *loopState) set(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *loopState) get() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// NewLoops returns an empty set; restarts counts restarts by loop name.
func NewLoops(log *slog.Logger, restarts *prometheus.CounterVec) *Loops {
	return &Loops{log: log, restarts: restarts, m: map[string]*loopState{}}
}

// Add registers a loop, not running yet, so that readiness waits for it;
// pass the result to Run.
func (l *Loops) Add(name string) *loopState {
	s := &loopState{name: name, err: errLoopStarting}
	l.mu.Lock()
	l.m[name] = s
	l.mu.Unlock()
	return s
}

// Run runs loop until ctx ends, starting it again with backoff each
// time it returns while ctx has not ended. loop calls running once it
// consumes; from its return until then, Check reports it. The loop is
// unregistered when Run returns.
func (l *Loops) Run(ctx context.Context, s *loopState, loop func(ctx context.Context, running func()) error) {
	defer func() {
		l.mu.Lock()
		if l.m[s.name] == s {
			delete(l.m, s.name)
		}
		l.mu.Unlock()
	}()
	running := func() { s.set(nil) }
	_ = retry.Do(ctx, retry.Backoff{Initial: restartInitial, Max: restartMax}, func(ctx context.Context) error {
		err := loop(ctx, running)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errLoopEnded
		}
		s.set(err)
		return err
	}, func(err error, wait time.Duration) {
		l.restarts.WithLabelValues(s.name).Inc()
		l.log.Warn("loop ended; restarting", "loop", s.name, "err", err, "wait", wait)
	})
}

// Check is a readiness check: it fails while a loop is not running.
func (l *Loops) Check(context.Context) error {
	l.mu.Lock()
	states := make([]*loopState, 0, len(l.m))
	for _, s := range l.m {
		states = append(states, s)
	}
	l.mu.Unlock()
	slices.SortFunc(states, func(a, b *loopState) int { return strings.Compare(a.name, b.name) })
	var down []string
	for _, s := range states {
		if err := s.get(); err != nil {
			down = append(down, s.name+" not running: "+err.Error())
		}
	}
	if len(down) > 0 {
		return errors.New(strings.Join(down, "; "))
	}
	return nil
}

// consumerGone reports whether cons no longer exists, after its iterator
// returned an error. The server ends the pulls of a consumer it deletes
// (the iterator closes), but a pull sent after the deletion reaches nothing
// that answers: its iterator only reports missing heartbeats, for ever.
func consumerGone(ctx context.Context, cons jetstream.Consumer) bool {
	_, err := cons.Info(ctx)
	return errors.Is(err, jetstream.ErrConsumerNotFound)
}
