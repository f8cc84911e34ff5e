package main

import (
	"testing"

	"github.com/edgeflow/edgeflow/devenv/envtest"
)

// FuzzConfig: whatever the environment holds, dashboard starts with a valid
// configuration or refuses with an error that names the variable and repeats
// no secret.
func FuzzConfig(f *testing.F) {
	envtest.Fuzz(f, &Config{}, func() error { _, err := LoadConfig(); return err })
}
