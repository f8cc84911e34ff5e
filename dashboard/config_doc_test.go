package main

import (
	"testing"

	"github.com/edgeflow/edgeflow/internal/service"
)

// Every EDGEFLOW_* variable is documented in docs/configuration.md with its default.
func TestConfigurationDocDocumentsEveryVariable(t *testing.T) {
	missing, err := service.CheckDocumented("../docs/configuration.md", &Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("docs/configuration.md does not document %v", missing)
	}
}
