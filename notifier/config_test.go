package main

import (
	"strings"
	"testing"
)

func TestConfigRefusesWhatCannotWork(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"EDGEFLOW_NOTIFIER_ID": "a.b"}, "EDGEFLOW_NOTIFIER_ID"},
		{map[string]string{"EDGEFLOW_RULES": ""}, "EDGEFLOW_RULES"},
		{map[string]string{"EDGEFLOW_NOTIFIER_TICK": "1ms"}, "EDGEFLOW_NOTIFIER_TICK"},
		{map[string]string{"EDGEFLOW_NOTIFIER_FAILOVER": "1s"}, "EDGEFLOW_NOTIFIER_FAILOVER"},
		{map[string]string{"EDGEFLOW_NOTIFIER_RULES_POLL": "1h"}, "EDGEFLOW_NOTIFIER_RULES_POLL"},
		{map[string]string{"EDGEFLOW_NOTIFIER_QUEUE_MAX_BYTES": "1000"}, "QUEUE_MAX_BYTES"},
		{map[string]string{"EDGEFLOW_NOTIFIER_DRAIN_TIMEOUT": "0s"}, "DRAIN_TIMEOUT"},
		{map[string]string{"EDGEFLOW_STREAM_REPLICAS": "2"}, "EDGEFLOW_STREAM_REPLICAS"},
		{map[string]string{"EDGEFLOW_NOTIFIER_TICK": "soon"}, "NOTIFIER_TICK"},
	} {
		t.Run(c.want, func(t *testing.T) {
			t.Setenv("EDGEFLOW_NOTIFIER_ID", "n1")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := LoadConfig()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadConfig() = %v, want an error naming %s", err, c.want)
			}
		})
	}
	t.Setenv("EDGEFLOW_NOTIFIER_ID", "n1")
	c, err := LoadConfig()
	if err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	if c.Rules != "rules.yaml" || c.HTTPAddr != ":8090" {
		t.Fatalf("defaults %+v", c)
	}
}
