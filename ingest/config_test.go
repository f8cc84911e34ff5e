package main

import (
	"slices"
	"strings"
	"testing"
)

func TestConfigRefusesWhatCannotWork(t *testing.T) {
	for _, c := range []struct{ key, value, want string }{
		{"EDGEFLOW_MQTT_URL", "http://broker", "EDGEFLOW_MQTT_URL"},
		{"EDGEFLOW_MQTT_URL", "tcp://", "EDGEFLOW_MQTT_URL"},
		{"EDGEFLOW_INGEST_TOPICS", "$share/g/sensors/#", "EDGEFLOW_INGEST_TOPICS"},
		{"EDGEFLOW_INGEST_SHARE_GROUP", "a/b", "SHARE_GROUP"},
		{"EDGEFLOW_INGEST_MAX_PAYLOAD", "10", "MAX_PAYLOAD"},
		{"EDGEFLOW_INGEST_MAX_PAST", "2000h", "MAX_PAST"},
		{"EDGEFLOW_INGEST_MAX_INFLIGHT", "0", "MAX_INFLIGHT"},
		{"EDGEFLOW_NATS_URL", "", "EDGEFLOW_NATS_URL"},
		{"EDGEFLOW_STREAM_REPLICAS", "2", "STREAM_REPLICAS"},
		{"EDGEFLOW_INGEST_MAX_FUTURE", "soon", "MAX_FUTURE"},
	} {
		t.Run(c.key+"="+c.value, func(t *testing.T) {
			t.Setenv(c.key, c.value)
			_, err := LoadConfig()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadConfig() = %v, want an error naming %s", err, c.want)
			}
		})
	}
}

func TestFiltersAddTheShareGroup(t *testing.T) {
	t.Setenv("EDGEFLOW_INGEST_CLIENT_ID", "i1")
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Filters(); !slices.Equal(got, []string{"sensors/+/+", "sensors/+/+/+"}) {
		t.Fatalf("default filters %v", got)
	}
	c.ShareGroup = "ingest"
	if got := c.Filters(); !slices.Equal(got, []string{"$share/ingest/sensors/+/+", "$share/ingest/sensors/+/+/+"}) {
		t.Fatalf("shared filters %v", got)
	}
}
