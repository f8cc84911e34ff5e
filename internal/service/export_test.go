package service

import (
	"testing"
	"time"
)

// SetIdleTimeout shortens the idle timeout of the servers Serve starts
// until the test ends. Tests that use it must not run in parallel.
func SetIdleTimeout(t testing.TB, d time.Duration) {
	old := idleTimeout
	idleTimeout = d
	t.Cleanup(func() { idleTimeout = old })
}

// VersionOf is versionOf, for the fallback's test.
var VersionOf = versionOf
