package main

import (
	"testing"

	"github.com/edgeflow/edgeflow/devenv/envtest"
)

func TestConfigRefusesWhatCannotWork(t *testing.T) {
	envtest.ExpectRefused(t, map[string]string{"EDGEFLOW_PROCESSOR_ID": "p1"}, []envtest.Refused{
		{Env: map[string]string{"EDGEFLOW_PROCESSOR_ID": "a.b"}, Want: "EDGEFLOW_PROCESSOR_ID"},
		{Env: map[string]string{"EDGEFLOW_INFLUX_URL": "ftp://x"}, Want: "EDGEFLOW_INFLUX_URL"},
		{Env: map[string]string{"EDGEFLOW_PROCESSOR_LEASE_TTL": "1s"}, Want: "LEASE_TTL"},
		{Env: map[string]string{"EDGEFLOW_PROCESSOR_WINDOWS": "1m,10s"}, Want: "ascending"},
		{Env: map[string]string{"EDGEFLOW_PROCESSOR_BATCH_SIZE": "0"}, Want: "BATCH_SIZE"},
		{Env: map[string]string{"EDGEFLOW_PARTITIONS": "0"}, Want: "EDGEFLOW_PARTITIONS"},
		{Env: map[string]string{"EDGEFLOW_PROCESSOR_WINDOWS": "ten"}, Want: "PROCESSOR_WINDOWS"},
		{Env: map[string]string{"EDGEFLOW_HUB_SITES": "north,a.b"}, Want: "EDGEFLOW_HUB_SITES"},
		{Env: map[string]string{"EDGEFLOW_HUB_SITES": "north", "EDGEFLOW_HUB_STREAMS": "ALERTS"}, Want: "must include AGGREGATES"},
		{Env: map[string]string{"EDGEFLOW_HUB_SITES": "north", "EDGEFLOW_HUB_MAX_AGE": "1s"}, Want: "EDGEFLOW_HUB_MAX_AGE"},
	}, func() error { _, err := LoadConfig(); return err })
	t.Setenv("EDGEFLOW_PROCESSOR_ID", "p1")
	if _, err := LoadConfig(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	t.Setenv("EDGEFLOW_HUB_SITES", "greenhouse-north,greenhouse-south")
	if c, err := LoadConfig(); err != nil || !c.IsHub() {
		t.Fatalf("hub with the defaults: %v (hub: %v)", err, c.IsHub())
	}
}
