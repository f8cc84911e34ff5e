package window

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Defaults, used by DefaultConfig.
const (
	// DefaultLateness is how far behind a device's newest reading another of
	// its readings may be and still count. Five seconds covers the reordering
	// of MQTT QoS 1 redeliveries and of a flaky Wi-Fi or cellular link; every
	// second added delays each aggregate by a second.
	DefaultLateness = 5 * time.Second
	// DefaultIdleGrace is how long, beyond the lateness, a device must stay
	// silent (State.Listen) before its windows are closed without its event
	// time. It absorbs jitter in a live device's sending and in the
	// pipeline, so that a device that is merely slow does not see its
	// current window closed under it.
	DefaultIdleGrace = 5 * time.Second
	// DefaultForgetAfter is how long a device must stay silent before its
	// entry is dropped (see the package comment, "Forgetting"). A day keeps
	// a device that reconnects after a night offline exact, and costs about
	// 200 bytes per device that went away.
	DefaultForgetAfter = 24 * time.Hour
)

// Limits checked by Config.Validate.
const (
	// MinSize and MaxSize bound a window length.
	MinSize = 100 * time.Millisecond
	MaxSize = 7 * 24 * time.Hour
	// MaxSizes is the largest number of window lengths: Add keeps one target
	// per length on its stack.
	MaxSizes = 8
	// MaxLatenessWindows bounds Lateness to this many windows of the smallest
	// length, which bounds the open windows per device and length.
	MaxLatenessWindows = 100
	// MaxIdleGrace bounds IdleGrace.
	MaxIdleGrace = 24 * time.Hour
	// MaxForgetAfter bounds ForgetAfter.
	MaxForgetAfter = 366 * 24 * time.Hour
)

// MinTS and MaxTS bound the event time (Unix ms) that Add places in a
// window: about ±285,000 years, so window arithmetic cannot overflow. A
// reading outside is reported late for every length; ingest should never
// publish one.
const (
	MinTS int64 = -(1 << 53)
	MaxTS int64 = 1 << 53
)

// ErrConfig is wrapped by every error of Config.Validate.
var ErrConfig = errors.New("invalid window config")

// Config sets the windows a State computes.
type Config struct {
	// Sizes are the tumbling window lengths, aligned to the Unix epoch:
	// whole milliseconds, between MinSize and MaxSize, unique, ascending.
	Sizes []time.Duration
	// Lateness is the allowed lateness: a window closes once the device's
	// time (package comment, "Device clocks") is Lateness past the window's
	// end.
	Lateness time.Duration
	// IdleGrace is the extra silence, beyond Lateness, before the windows
	// of a silent device are closed (package comment, "Closing").
	IdleGrace time.Duration
	// ForgetAfter is how long a device with no open window must be silent
	// before its entry is dropped; 0 keeps every device forever.
	ForgetAfter time.Duration
}

// DefaultConfig returns 10 s and 1 min windows with the default lateness,
// idle grace and forgetting horizon. A zero field of Config means zero, not
// the default.
func DefaultConfig() Config {
	return Config{
		Sizes:       []time.Duration{10 * time.Second, time.Minute},
		Lateness:    DefaultLateness,
		IdleGrace:   DefaultIdleGrace,
		ForgetAfter: DefaultForgetAfter,
	}
}

// Validate reports the first problem of c, wrapping ErrConfig.
func (c Config) Validate() error {
	if len(c.Sizes) == 0 {
		return fmt.Errorf("window sizes: none given: %w", ErrConfig)
	}
	if len(c.Sizes) > MaxSizes {
		return fmt.Errorf("window sizes: %d given, at most %d: %w", len(c.Sizes), MaxSizes, ErrConfig)
	}
	for i, d := range c.Sizes {
		switch {
		case d%time.Millisecond != 0:
			return fmt.Errorf("window size %v: not a whole number of milliseconds: %w", d, ErrConfig)
		case d < MinSize || d > MaxSize:
			return fmt.Errorf("window size %v: must be between %v and %v: %w", d, MinSize, MaxSize, ErrConfig)
		case i > 0 && d == c.Sizes[i-1]:
			return fmt.Errorf("window size %v: given twice: %w", d, ErrConfig)
		case i > 0 && d < c.Sizes[i-1]:
			return fmt.Errorf("window sizes %v: must be in ascending order: %w", c.Sizes, ErrConfig)
		}
	}
	smallest := c.Sizes[0]
	switch {
	case c.Lateness < 0:
		return fmt.Errorf("lateness %v: must not be negative: %w", c.Lateness, ErrConfig)
	case c.Lateness%time.Millisecond != 0:
		return fmt.Errorf("lateness %v: not a whole number of milliseconds: %w", c.Lateness, ErrConfig)
	case c.Lateness > MaxLatenessWindows*smallest:
		return fmt.Errorf("lateness %v: at most %d times the smallest window (%v), or each device keeps too many windows open: %w",
			c.Lateness, MaxLatenessWindows, MaxLatenessWindows*smallest, ErrConfig)
	}
	switch {
	case c.IdleGrace < 0 || c.IdleGrace > MaxIdleGrace:
		return fmt.Errorf("idle grace %v: must be between 0 and %v: %w", c.IdleGrace, MaxIdleGrace, ErrConfig)
	case c.IdleGrace%time.Millisecond != 0:
		return fmt.Errorf("idle grace %v: not a whole number of milliseconds: %w", c.IdleGrace, ErrConfig)
	}
	// A device is forgotten only once all its windows are closed, so a
	// horizon shorter than the time they take to close would never apply.
	minForget := c.Sizes[len(c.Sizes)-1] + c.Lateness + c.IdleGrace
	switch {
	case c.ForgetAfter == 0:
	case c.ForgetAfter < minForget || c.ForgetAfter > MaxForgetAfter:
		return fmt.Errorf("forget after %v: must be 0 (never) or between largest size + lateness + idle grace (%v) and %v: %w",
			c.ForgetAfter, minForget, MaxForgetAfter, ErrConfig)
	case c.ForgetAfter%time.Millisecond != 0:
		return fmt.Errorf("forget after %v: not a whole number of milliseconds: %w", c.ForgetAfter, ErrConfig)
	}
	return nil
}

// String renders c as a log line would: "windows [10s 1m0s], lateness 5s,
// idle grace 5s, forget after 24h0m0s".
func (c Config) String() string {
	return fmt.Sprintf("windows %v, lateness %v, idle grace %v, forget after %v", c.Sizes, c.Lateness, c.IdleGrace, c.ForgetAfter)
}

// clone returns c with its own copy of Sizes, so that a caller changing its
// slice cannot change a running State.
func (c Config) clone() Config {
	c.Sizes = slices.Clone(c.Sizes)
	return c
}
