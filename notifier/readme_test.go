package main

import (
	"testing"

	"github.com/edgeflow/edgeflow/internal/service"
)

// Every EDGEFLOW_* variable is documented in the README with its default.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	missing, err := service.CheckDocumented("../README.md", &Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Fatalf("README.md does not document %v", missing)
	}
}
