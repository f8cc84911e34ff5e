package decode

import "time"

// Defaults for Limits.
const (
	// DefaultMaxPayload is far above any reading a sensor sends (a 256-metric
	// object is about 8 KiB) and well under MQTT and NATS message limits, so a
	// message that large is a fault or an attack, not data.
	DefaultMaxPayload = 64 << 10
	// DefaultMaxMetrics bounds the map a single reading carries, which every
	// downstream service holds in memory per window.
	DefaultMaxMetrics = 256
	// DefaultMaxPast lets a device that was offline for up to a week flush
	// its buffer; older data would land in windows that are long closed.
	DefaultMaxPast = 7 * 24 * time.Hour
	// DefaultMaxFuture tolerates ordinary clock skew; a device further ahead
	// has a wrong clock, and its readings would sit in future windows.
	DefaultMaxFuture = 5 * time.Minute
)

// Limits bound what Decode accepts; all are configured from the environment
// by ingest. A zero or negative field means its default.
type Limits struct {
	MaxPayload int           // bytes, default 64 KiB
	MaxMetrics int           // metrics per reading, default 256
	MaxPast    time.Duration // how far before now a device timestamp may be, default 7*24h
	MaxFuture  time.Duration // how far after now, default 5m
}

// DefaultLimits returns the limits ingest uses when nothing is configured.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload: DefaultMaxPayload,
		MaxMetrics: DefaultMaxMetrics,
		MaxPast:    DefaultMaxPast,
		MaxFuture:  DefaultMaxFuture,
	}
}

// orDefaults replaces unset fields, so Limits{} behaves like DefaultLimits().
func (l Limits) orDefaults() Limits {
	if l.MaxPayload <= 0 {
		l.MaxPayload = DefaultMaxPayload
	}
	if l.MaxMetrics <= 0 {
		l.MaxMetrics = DefaultMaxMetrics
	}
	if l.MaxPast <= 0 {
		l.MaxPast = DefaultMaxPast
	}
	if l.MaxFuture <= 0 {
		l.MaxFuture = DefaultMaxFuture
	}
	return l
}
