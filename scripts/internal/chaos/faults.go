package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// Fault is one fault injected, and what the pipeline took to recover.
type Fault struct {
	N      int           `json:"n"`
	Time   time.Time     `json:"time"`
	At     time.Duration `json:"-"`
	Target string        `json:"target"`
	Kind   string        `json:"kind"`
	// Down is how long the target was down (kill, restart) or paused.
	Down time.Duration `json:"-"`
	// ReadyAfter is the time from the injection until the target was ready
	// again (0: never, see Err).
	ReadyAfter time.Duration `json:"-"`
	// DrainedAfter is the time from the injection until the pipeline's
	// backlog drained: every device's newest reading in InfluxDB at most
	// Config.FreshWithin old (0: not seen before the load ended).
	DrainedAfter time.Duration `json:"-"`
	// PeakLag is the oldest "newest reading" seen between the injection and
	// the drain: how far the pipeline fell behind.
	PeakLag time.Duration `json:"-"`
	// Late is the number of readings dead-lettered as late that were read
	// (device time) after this fault and before the next.
	Late int `json:"late"`
	// Err says what went wrong injecting or recovering, if anything.
	Err string `json:"error,omitempty"`

	injected, ready time.Time
}

func (f Fault) MarshalJSON() ([]byte, error) {
	type plain Fault
	return json.Marshal(struct {
		plain
		At           float64 `json:"at_seconds"`
		Down         float64 `json:"down_seconds"`
		ReadyAfter   float64 `json:"ready_after_seconds"`
		DrainedAfter float64 `json:"drained_after_seconds"`
		PeakLag      float64 `json:"peak_lag_seconds"`
	}{plain(f), secs(f.At), secs(f.Down), secs(f.ReadyAfter), secs(f.DrainedAfter), secs(f.PeakLag)})
}

func secs(d time.Duration) float64 {
	return float64(d.Round(10*time.Millisecond)) / float64(time.Second)
}

// plan is the seeded part of one fault: drawn before it is injected, in
// the same order whatever the machine does, so a seed replays the sequence.
type plan struct {
	gap    time.Duration
	target *target
	kind   string
	down   time.Duration
}

// planner draws the faults: targets from a shuffled bag (every eligible
// target once per round, so a short run still covers most of them), a kind
// among those the target allows, a down time and the gap after recovery.
type planner struct {
	cfg     *Config
	rng     *rand.Rand
	targets []*target
	bag     []*target
}

func newPlanner(cfg *Config, targets []*target) *planner {
	p := &planner{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	for _, t := range targets {
		if cfg.selected(t.name) && len(p.kinds(t)) > 0 {
			p.targets = append(p.targets, t)
		}
	}
	return p
}

func (p *planner) kinds(t *target) []string {
	var ks []string
	for _, k := range t.kinds {
		if p.cfg.kindAllowed(k) {
			ks = append(ks, k)
		}
	}
	return ks
}

func (p *planner) next() (plan, bool) {
	if len(p.targets) == 0 {
		return plan{}, false
	}
	if len(p.bag) == 0 {
		p.bag = append(p.bag, p.targets...)
		p.rng.Shuffle(len(p.bag), func(i, j int) { p.bag[i], p.bag[j] = p.bag[j], p.bag[i] })
	}
	t := p.bag[0]
	p.bag = p.bag[1:]
	ks := p.kinds(t)
	c := p.cfg
	return plan{
		gap:    c.MinGap + time.Duration(p.rng.Int64N(int64(c.MaxGap-c.MinGap)+1)),
		target: t,
		kind:   ks[p.rng.IntN(len(ks))],
		down:   c.MaxDown/4 + time.Duration(p.rng.Int64N(int64(c.MaxDown-c.MaxDown/4)+1)),
	}, true
}

// faultLoop injects faults from warmup until quiet before the load's end,
// one at a time: the next comes a gap after the previous target is ready.
func (r *runner) faultLoop(ctx context.Context, loadStart time.Time) []Fault {
	cfg := r.cfg
	pl := newPlanner(cfg, r.stack.targets)
	end := loadStart.Add(cfg.Duration - cfg.Quiet)
	if !sleepUntil(ctx, loadStart.Add(cfg.Warmup)) {
		return nil
	}
	var faults []Fault
	for {
		p, ok := pl.next()
		// A fault and its recovery should be over before the quiet tail.
		if !ok || time.Now().Add(p.down+5*time.Second).After(end) {
			return faults
		}
		f := r.inject(ctx, p, loadStart)
		f.N = len(faults) + 1
		r.logf("fault %d: %s %s (down %s): ready after %s%s", f.N, f.Kind, f.Target, f.Down.Round(time.Millisecond),
			f.ReadyAfter.Round(time.Millisecond), errSuffix(f.Err))
		faults = append(faults, f)
		if !sleepUntil(ctx, time.Now().Add(p.gap)) {
			return faults
		}
	}
}

// inject applies one fault and waits until its target is ready again.
func (r *runner) inject(ctx context.Context, p plan, loadStart time.Time) Fault {
	t := p.target
	f := Fault{Target: t.name, Kind: p.kind, Down: p.down}
	fail := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		if f.Err != "" {
			f.Err += "; "
		}
		f.Err += msg
	}
	r.logf("fault: %s %s for %s", p.kind, t.name, p.down.Round(time.Millisecond))
	f.injected = time.Now()
	f.Time = f.injected.UTC()
	f.At = f.injected.Sub(loadStart)
	switch p.kind {
	case KindKill:
		if err := t.proc.Kill(); err != nil {
			// Kill reports a process that had already died on its own.
			fail("before the kill: %s", firstLine(err.Error()))
		}
	case KindRestart:
		if err := t.proc.Stop(ctx); err != nil {
			fail("graceful stop: %s", firstLine(err.Error()))
		}
	case KindPause:
		if err := t.proc.Pause(); err != nil {
			fail("pause: %v", err)
		}
	}
	sleepUntil(ctx, f.injected.Add(p.down))
	if p.kind == KindPause {
		if err := t.proc.Resume(); err != nil {
			fail("resume: %v", err)
		}
		if err := waitReady(ctx, t, serviceReadyTimeout); err != nil {
			fail("%v", err)
			return f
		}
	} else {
		// Restart waits for readiness; a start that fails (a port not yet
		// released, a server slow to recover) is tried again.
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			if err = t.proc.Restart(ctx); err == nil || ctx.Err() != nil {
				break
			}
			fail("start %d: %s", attempt, firstLine(err.Error()))
		}
		if err != nil {
			return f
		}
	}
	f.ready = time.Now()
	f.ReadyAfter = f.ready.Sub(f.injected)
	return f
}

// mergeFaults orders the process and input faults by injection time and
// numbers them.
func mergeFaults(a, b []Fault) []Fault {
	all := slices.SortedStableFunc(slices.Values(append(a, b...)), func(x, y Fault) int { return x.injected.Compare(y.injected) })
	for i := range all {
		all[i].N = i + 1
	}
	return all
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}
