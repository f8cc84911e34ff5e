package window

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	with := func(f func(*Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" when valid
	}{
		{"default", def, ""},
		{"one 100ms size", with(func(c *Config) { c.Sizes = []time.Duration{100 * time.Millisecond}; c.Lateness = time.Second }), ""},
		{"zero lateness and grace", with(func(c *Config) { c.Lateness, c.IdleGrace = 0, 0 }), ""},
		{"never forget", with(func(c *Config) { c.ForgetAfter = 0 }), ""},
		{"three sizes", with(func(c *Config) { c.Sizes = []time.Duration{time.Second, time.Minute, time.Hour} }), ""},
		{"no sizes", with(func(c *Config) { c.Sizes = nil }), "none given"},
		{"too many sizes", with(func(c *Config) {
			c.Sizes = nil
			for i := range MaxSizes + 1 {
				c.Sizes = append(c.Sizes, time.Duration(i+1)*time.Second)
			}
		}), "at most 8"},
		{"sub-millisecond", with(func(c *Config) { c.Sizes = []time.Duration{10*time.Second + time.Microsecond} }), "whole number of milliseconds"},
		{"too small", with(func(c *Config) { c.Sizes = []time.Duration{50 * time.Millisecond}; c.Lateness = 0 }), "between 100ms"},
		{"zero size", with(func(c *Config) { c.Sizes = []time.Duration{0, time.Minute} }), "between 100ms"},
		{"too large", with(func(c *Config) { c.Sizes = []time.Duration{8 * 24 * time.Hour} }), "between 100ms"},
		{"duplicate", with(func(c *Config) { c.Sizes = []time.Duration{time.Minute, time.Minute} }), "given twice"},
		{"descending", with(func(c *Config) { c.Sizes = []time.Duration{time.Minute, 10 * time.Second} }), "ascending"},
		{"negative lateness", with(func(c *Config) { c.Lateness = -time.Second }), "must not be negative"},
		{"lateness sub-ms", with(func(c *Config) { c.Lateness = time.Second + 1 }), "lateness 1.000000001s: not a whole"},
		{"lateness too long", with(func(c *Config) { c.Lateness = 1001 * time.Second }), "at most 100 times the smallest window (16m40s)"},
		{"negative grace", with(func(c *Config) { c.IdleGrace = -1 }), "idle grace"},
		{"grace too long", with(func(c *Config) { c.IdleGrace = 25 * time.Hour }), "idle grace"},
		{"forget too soon", with(func(c *Config) { c.ForgetAfter = time.Minute }), "forget after 1m0s"},
		{"forget too late", with(func(c *Config) { c.ForgetAfter = 400 * 24 * time.Hour }), "forget after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				NewState(tt.cfg) // must not panic
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate() = %v, want an ErrConfig containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewStatePanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewState accepted an invalid config")
		}
	}()
	NewState(Config{})
}

func TestStateKeepsItsOwnSizes(t *testing.T) {
	cfg := DefaultConfig()
	s := NewState(cfg)
	cfg.Sizes[0] = time.Hour
	if got := s.Config().Sizes[0]; got != 10*time.Second {
		t.Fatalf("State changed with the caller's slice: size %v", got)
	}
}
