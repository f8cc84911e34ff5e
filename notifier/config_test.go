package main

import (
	"testing"

	"github.com/edgeflow/edgeflow/devenv/envtest"
)

func TestConfigRefusesWhatCannotWork(t *testing.T) {
	envtest.ExpectRefused(t, map[string]string{"EDGEFLOW_NOTIFIER_ID": "n1"}, []envtest.Refused{
		{Env: map[string]string{"EDGEFLOW_NOTIFIER_ID": "a.b"}, Want: "EDGEFLOW_NOTIFIER_ID"},
		{Env: map[string]string{"EDGEFLOW_RULES": ""}, Want: "EDGEFLOW_RULES"},
		{Env: map[string]string{"EDGEFLOW_NOTIFIER_TICK": "1ms"}, Want: "EDGEFLOW_NOTIFIER_TICK"},
		{Env: map[string]string{"EDGEFLOW_NOTIFIER_FAILOVER": "1s"}, Want: "EDGEFLOW_NOTIFIER_FAILOVER"},
		{Env: map[string]string{"EDGEFLOW_NOTIFIER_RULES_POLL": "1h"}, Want: "EDGEFLOW_NOTIFIER_RULES_POLL"},
		{Env: map[string]string{"EDGEFLOW_NOTIFIER_QUEUE_MAX_BYTES": "1000"}, Want: "QUEUE_MAX_BYTES"},
		{Env: map[string]string{"EDGEFLOW_NOTIFIER_DRAIN_TIMEOUT": "0s"}, Want: "DRAIN_TIMEOUT"},
		{Env: map[string]string{"EDGEFLOW_STREAM_REPLICAS": "2"}, Want: "EDGEFLOW_STREAM_REPLICAS"},
		{Env: map[string]string{"EDGEFLOW_NOTIFIER_TICK": "soon"}, Want: "NOTIFIER_TICK"},
	}, func() error { _, err := LoadConfig(); return err })
	t.Setenv("EDGEFLOW_NOTIFIER_ID", "n1")
	c, err := LoadConfig()
	if err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if c.Rules != "rules.yaml" || c.HTTPAddr != ":8090" {
		t.Fatalf("defaults %+v", c)
	}
}
