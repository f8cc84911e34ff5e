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
		{map[string]string{"EDGEFLOW_PROCESSOR_ID": "a.b"}, "EDGEFLOW_PROCESSOR_ID"},
		{map[string]string{"EDGEFLOW_INFLUX_URL": "ftp://x"}, "EDGEFLOW_INFLUX_URL"},
		{map[string]string{"EDGEFLOW_PROCESSOR_LEASE_TTL": "1s"}, "LEASE_TTL"},
		{map[string]string{"EDGEFLOW_PROCESSOR_WINDOWS": "1m,10s"}, "ascending"},
		{map[string]string{"EDGEFLOW_PROCESSOR_BATCH_SIZE": "0"}, "BATCH_SIZE"},
		{map[string]string{"EDGEFLOW_PARTITIONS": "0"}, "EDGEFLOW_PARTITIONS"},
		{map[string]string{"EDGEFLOW_PROCESSOR_WINDOWS": "ten"}, "PROCESSOR_WINDOWS"},
	} {
		t.Run(c.want, func(t *testing.T) {
			t.Setenv("EDGEFLOW_PROCESSOR_ID", "p1")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			_, err := LoadConfig()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadConfig() = %v, want an error naming %s", err, c.want)
			}
		})
	}
	t.Setenv("EDGEFLOW_PROCESSOR_ID", "p1")
	if _, err := LoadConfig(); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
}
