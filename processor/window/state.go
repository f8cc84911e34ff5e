package window

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// deviceKey identifies a device: a struct of the reading's own strings, so
// that looking a device up builds no key.
type deviceKey struct{ site, device string }

// device is the windowing state of one device.
type device struct {
	site, name string
	// maxTS is the device's time, the newest event time its readings vouch
	// for (package comment, "Device clocks"): watermark = maxTS − lateness.
	maxTS int64
	// lastRx is the newest Received seen, 0 when no reading carried one.
	lastRx int64
	// offset is the clock offset (event time − Received) of the device's
	// latest reading that carried a Received, 0 before one did: the offset
	// the next reading's must confirm.
	offset int64
	// heardAt is State.listened when the device's newest reading was added:
	// its silence is State.listened − heardAt.
	heardAt int64
	// sizes[i] is the state for Config.Sizes[i].
	sizes []sizeState
	// dated and undated hold the identities of the readings with and
	// without device time folded into the device's windows, back to
	// forgetCutoff (package comment, "Duplicates"). A copy of a reading
	// with device time has its event time, and is looked for by it; a copy
	// of one without has a later event time, and is looked for by identity.
	dated   datedSet
	undated seenSet
}

// sizeState is one device's state for one window length.
type sizeState struct {
	// closedUntil: every window of this length ending at or before it is
	// closed; a reading for one of them is late.
	closedUntil int64
	// since is the start of the device's first window of this length, when
	// the length was added after the device's first reading (package
	// comment, "Changing the configuration"), noSince otherwise. A reading
	// of an earlier window that the watermark does not make late is not
	// counted for this length, and not late either. since <= closedUntil.
	since int64
	// open windows, by ascending start.
	open []*window
	// spare is a closed window kept for reuse; never checkpointed.
	spare *window
}

// State holds the open windows of all devices of one partition. Create it
// with NewState, or load it with UnmarshalBinary. It is not safe for
// concurrent use.
type State struct {
	cfg Config
	// In Unix milliseconds, as readings are.
	sizes                            []int64
	names                            []string // reading.WindowName of each size
	lateness, idleGrace, forgetAfter int64
	devices                          map[deviceKey]*device
	// floor is the forget floor (package comment): the largest closed-until
	// mark of any forgotten device, math.MinInt64 when none was forgotten.
	floor int64
	open  int
	// listened is the listening time (Listen) so far, in ms.
	listened int64
}

// NewState returns an empty State. It panics if cfg is invalid: call
// cfg.Validate when the configuration is read.
func NewState(cfg Config) *State {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("window.NewState: %v", err))
	}
	s := &State{devices: make(map[deviceKey]*device), floor: math.MinInt64}
	s.configure(cfg)
	return s
}

// configure sets the configuration of s; cfg must be valid.
func (s *State) configure(cfg Config) {
	s.cfg = cfg.clone()
	s.sizes = make([]int64, len(cfg.Sizes))
	s.names = make([]string, len(cfg.Sizes))
	for i, d := range cfg.Sizes {
		s.sizes[i] = d.Milliseconds()
		s.names[i] = reading.WindowName(d)
	}
	s.lateness = cfg.Lateness.Milliseconds()
	s.idleGrace = cfg.IdleGrace.Milliseconds()
	s.forgetAfter = cfg.ForgetAfter.Milliseconds()
}

// Config returns the configuration of s.
func (s *State) Config() Config { return s.cfg.clone() }

// Open returns the number of open windows, over all devices and lengths.
func (s *State) Open() int { return s.open }

// Devices returns the number of devices tracked.
func (s *State) Devices() int { return len(s.devices) }

// windowStart returns the start of the window of length size holding ts.
func windowStart(ts, size int64) int64 {
	m := ts % size
	if m < 0 {
		m += size
	}
	return ts - m
}

// Add folds one reading into the window of each length. It returns the
// lengths for which the reading is late (package comment); those are not
// changed, and the reading still counts in the others. A reading outside
// [MinTS, MaxTS] is late for every length.
//
// A reading with an identity (reading.Identity) equal to that of a reading
// folded into the device's windows that could still count is a duplicate
// (package comment, "Duplicates"): Add changes nothing and returns
// duplicate true.
//
// r must be valid (reading.Validate): its names end up in aggregates.
// A reading without metrics changes nothing. Once a device's windows and
// its identities have reached their usual size, Add does not allocate
// unless the reading is late.
func (s *State) Add(r reading.Reading) (lateFor []time.Duration, duplicate bool) {
	if len(r.Metrics) == 0 {
		return nil, false
	}
	if r.TS < MinTS || r.TS > MaxTS {
		return s.Config().Sizes, false
	}
	id, hasID := r.Identity()
	d := s.devices[deviceKey{r.Site, r.Device}]
	if d == nil {
		d = s.newDevice(r.Site, r.Device)
	} else if hasID && s.duplicate(d, id, &r) {
		return nil, true
	}
	watermark := d.maxTS - s.lateness
	var targets [MaxSizes]*window
	folded := false
	for i, size := range s.sizes {
		start := windowStart(r.TS, size)
		end := start + size
		ss := &d.sizes[i]
		if end <= watermark || end <= ss.closedUntil {
			if end <= watermark || end > ss.since {
				lateFor = append(lateFor, s.cfg.Sizes[i])
			}
			continue
		}
		targets[i] = s.windowAt(ss, start)
		folded = true
	}
	if folded {
		for name, v := range r.Metrics {
			for _, w := range targets[:len(s.sizes)] {
				if w != nil {
					w.observe(name, v, r.TS)
				}
			}
		}
		switch {
		case !hasID:
		case r.DeviceTime:
			d.dated.add(id, r.TS)
		default:
			d.undated.add(id, r.TS)
		}
	}
	// The device's time moves to r.TS only as far as r's arrival, with the
	// smaller of r's clock offset and the previous reading's, supports it.
	vouched := r.TS
	if r.Received > 0 && r.Received <= MaxTS {
		offset := r.TS - r.Received
		vouched = r.Received + min(offset, d.offset)
		d.offset = offset
		d.lastRx = max(d.lastRx, r.Received)
	}
	if vouched > d.maxTS {
		d.maxTS = vouched
	}
	d.heardAt = s.listened
	return lateFor, false
}

// duplicate reports whether r, of identity id, is a copy of a reading folded
// into d's windows that could still count.
func (s *State) duplicate(d *device, id uint64, r *reading.Reading) bool {
	if r.DeviceTime {
		return d.dated.holds(id, r.TS) && r.TS >= s.cutoff(d, d.maxTS-s.lateness)
	}
	ts, ok := d.undated.newest(id)
	return ok && ts >= s.cutoff(d, d.maxTS-s.lateness)
}

// cutoff returns the event time before which a reading is late, or not
// counted, for every length of d, by d's closed-until marks and the given
// watermark: its window of each length ends at or before one of them. With
// d's watermark, it is where duplicates are looked for (Add); with
// math.MinInt64, where the identities may be forgotten (forgetCutoff).
func (s *State) cutoff(d *device, watermark int64) int64 {
	c := int64(MaxTS)
	for i, size := range s.sizes {
		c = min(c, windowStart(max(d.sizes[i].closedUntil, watermark, MinTS), size))
	}
	return c
}

// forgetCutoff returns the event time before which d's identities may be
// forgotten. It depends only on the closed-until marks, not on the
// watermark: a window the watermark makes due stays open until CloseDue,
// and a lateness raised by a new configuration can make it not due again
// (Load), with the identities of its readings still needed.
func (s *State) forgetCutoff(d *device) int64 { return s.cutoff(d, math.MinInt64) }

// forgetSeen drops the identities of d that forgetCutoff allows.
func (s *State) forgetSeen(d *device) {
	if len(d.dated.spans) == 0 && len(d.undated.entries) == 0 {
		return
	}
	cutoff := s.forgetCutoff(d)
	d.dated.forgetBefore(cutoff)
	d.undated.forgetBefore(cutoff)
}

// maxListened bounds State.listened and a device's silence: far beyond any
// window arithmetic, far below overflow.
const maxListened int64 = 1 << 60

// Listen tells s that the worker listened to its partition for d: it was
// caught up with the partition when d began and when it ended, and nothing
// kept it from reading in between (no outage, no backlog). Every device
// has then been silent d longer, unless a reading of it is added
// afterwards: the worker calls Listen for the time before a batch, then
// adds the batch. Time that was not spent listening (a blocked write, NATS
// away, a backlog being read) must not be passed: a device is silent only
// for as long as the worker could have heard it and did not. Silence closes
// windows only in CloseDue with caughtUp (package comment, "Closing").
func (s *State) Listen(d time.Duration) {
	if d > 0 {
		s.listened = min(s.listened+min(d.Milliseconds(), maxListened), maxListened)
	}
}

// silence is how long d has been silent while the worker listened, in ms.
func (s *State) silence(d *device) int64 {
	return min(s.listened-d.heardAt, maxListened)
}

// newDevice adds a device; its time starts at MinTS, until Add sets it.
// Its closed-until marks start at the forget floor, so that it cannot reopen
// a window it had published before it was forgotten.
func (s *State) newDevice(site, name string) *device {
	d := &device{
		site:    strings.Clone(site),
		name:    strings.Clone(name),
		maxTS:   MinTS,
		heardAt: s.listened,
		sizes:   make([]sizeState, len(s.sizes)),
	}
	for i := range d.sizes {
		d.sizes[i] = sizeState{closedUntil: s.floor, since: noSince}
	}
	s.devices[deviceKey{d.site, d.name}] = d
	return d
}

// windowAt returns the open window starting at start, opening it if needed.
// Readings mostly go to the newest window, so the search runs backwards.
func (s *State) windowAt(ss *sizeState, start int64) *window {
	i := len(ss.open)
	for ; i > 0; i-- {
		w := ss.open[i-1]
		if w.start == start {
			return w
		}
		if w.start < start {
			break
		}
	}
	w := ss.spare
	if w != nil {
		ss.spare = nil
	} else {
		w = &window{}
	}
	w.start = start
	ss.open = append(ss.open, nil)
	copy(ss.open[i+1:], ss.open[i:])
	ss.open[i] = w
	s.open++
	return w
}
