package main

import (
	"testing"
	"time"
)

func TestParseSync(t *testing.T) {
	for _, c := range []struct {
		in     string
		every  time.Duration
		always bool
		ok     bool
	}{
		{"1s", time.Second, false, true},
		{"2m", 2 * time.Minute, false, true},
		{"always", 0, true, true},
		{"0s", 0, false, false},
		{"-1s", 0, false, false},
		{"sometimes", 0, false, false},
	} {
		every, always, err := parseSync(c.in)
		if (err == nil) != c.ok || every != c.every || always != c.always {
			t.Errorf("parseSync(%q) = %v, %v, %v", c.in, every, always, err)
		}
	}
}
