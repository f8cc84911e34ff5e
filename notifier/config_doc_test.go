package main

import (
	"testing"

	"github.com/edgeflow/edgeflow/devenv/envtest"
)

// Every EDGEFLOW_* variable is documented in docs/configuration.md with its default.
func TestConfigurationDocDocumentsEveryVariable(t *testing.T) {
	envtest.Documented(t, "../docs/configuration.md", &Config{})
}
