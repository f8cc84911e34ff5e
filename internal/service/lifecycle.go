package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgeflow/edgeflow/internal/retry"
)

// Group runs the parts of a service that must outlive its work, in the
// spirit of oklog/run and errgroup: the HTTP server (so /healthz, /readyz and
// /metrics answer while the service starts and while it drains), file
// watchers, KV mirrors.
//
// The work runs on the context NewGroup returns, which ends on SIGTERM (the
// parent context) or when a part fails. The parts run on a context that ends
// only in Wait, once the work has drained: a service is observable until it
// has finished.
type Group struct {
	stopCtx context.Context // the parts' context: ends in Wait
	stop    context.CancelFunc
	fail    context.CancelFunc // ends the work's context
	wg      sync.WaitGroup
	once    sync.Once
	mu      sync.Mutex
	err     error
}

// NewGroup returns a group with no parts, and the context the work runs on.
func NewGroup(ctx context.Context) (*Group, context.Context) {
	g := &Group{}
	g.stopCtx, g.stop = context.WithCancel(context.Background())
	work, fail := context.WithCancel(ctx)
	g.fail = fail
	return g, work
}

// Go starts part now. Its context ends in Wait; a part that returns an error
// before that ends the work's context, and Wait returns the error. A part
// started after Wait sees its context ended already.
func (g *Group) Go(part func(ctx context.Context) error) {
	g.wg.Go(func() {
		if err := part(g.stopCtx); err != nil {
			g.setErr(err)
			g.fail()
		}
	})
}

// Serve starts the service's HTTP server as a part (Serve): it shuts down
// gracefully in Wait, after the work.
func (g *Group) Serve(log *slog.Logger, addr string, handler http.Handler) {
	g.Go(func(ctx context.Context) error { return Serve(ctx, log, addr, handler) })
}

// Wait is called when the work has returned (drained), with its error: it
// stops the parts, waits for them and returns the first error, a failed
// part's, else err, else one a part returned while it stopped. Later calls
// (a deferred Wait(nil) for early returns) return the same.
func (g *Group) Wait(err error) error {
	g.once.Do(func() {
		if err != nil {
			g.setErr(err)
		}
		g.stop()
		g.wg.Wait()
		g.fail()
	})
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *Group) setErr(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
	}
}

// errStarting is /readyz's startup failure before the first attempt.
var errStarting = errors.New("starting")

// Startup is the "startup" readiness check: a service is alive but not ready
// while it waits for its dependencies (streams another service creates, a
// database still starting).
type Startup struct {
	err atomic.Pointer[error]
}

// Starting adds the "startup" check to h, failing with "starting" until
// Done.
func (h *Health) Starting() *Startup {
	s := &Startup{}
	s.err.Store(&errStarting)
	h.AddCheck("startup", func(context.Context) error { return *s.err.Load() })
	return s
}

// Await calls ensure until it succeeds, backing off up to 2 s between
// attempts; meanwhile the check reports ensure's last error. It returns ctx's
// error if ctx ends first. It does not mark the service started: Done does.
func (s *Startup) Await(ctx context.Context, log *slog.Logger, ensure func(ctx context.Context) error) error {
	return retry.Do(ctx, retry.Backoff{Max: 2 * time.Second}, ensure, func(err error, _ time.Duration) {
		s.err.Store(&err)
		log.Warn("waiting for dependencies", "err", err)
	})
}

// Done marks the service started: the check passes from now on.
func (s *Startup) Done() { s.err.Store(new(error)) }

// Drain is the context work in hand runs on: it outlives the service's
// context by a timeout, so what was accepted before SIGTERM may finish, and
// ends that long after SIGTERM.
type Drain struct {
	ctx      context.Context
	cancel   context.CancelFunc
	unhook   func() bool
	timeout  time.Duration
	timedOut atomic.Bool
}

// NewDrain returns a drain that ends timeout after ctx ends. Stop releases
// it.
func NewDrain(ctx context.Context, timeout time.Duration) *Drain {
	d := &Drain{timeout: timeout}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.unhook = context.AfterFunc(ctx, func() {
		t := time.AfterFunc(timeout, func() { d.timedOut.Store(true); d.cancel() })
		context.AfterFunc(d.ctx, func() { t.Stop() })
	})
	return d
}

// Context is the work's context.
func (d *Drain) Context() context.Context { return d.ctx }

// Stop ends the drain's context and its timer.
func (d *Drain) Stop() {
	d.unhook()
	d.cancel()
}

// Err returns nil if the drain has not timed out, else an error saying so
// and what became of the work cut off (lost).
func (d *Drain) Err(lost string) error {
	if !d.timedOut.Load() {
		return nil
	}
	return fmt.Errorf("drain timed out after %s; %s", d.timeout, lost)
}
