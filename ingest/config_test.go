package main

import (
	"slices"
	"testing"

	"github.com/edgeflow/edgeflow/devenv/envtest"
)

func TestConfigRefusesWhatCannotWork(t *testing.T) {
	envtest.ExpectRefused(t, nil, []envtest.Refused{
		{Env: map[string]string{"EDGEFLOW_MQTT_URL": "http://broker"}, Want: "EDGEFLOW_MQTT_URL"},
		{Env: map[string]string{"EDGEFLOW_MQTT_URL": "tcp://"}, Want: "EDGEFLOW_MQTT_URL"},
		{Env: map[string]string{"EDGEFLOW_INGEST_TOPICS": "$share/g/sensors/#"}, Want: "EDGEFLOW_INGEST_TOPICS"},
		{Env: map[string]string{"EDGEFLOW_INGEST_SHARE_GROUP": "a/b"}, Want: "SHARE_GROUP"},
		{Env: map[string]string{"EDGEFLOW_INGEST_MAX_PAYLOAD": "10"}, Want: "MAX_PAYLOAD"},
		{Env: map[string]string{"EDGEFLOW_INGEST_MAX_PAST": "2000h"}, Want: "MAX_PAST"},
		{Env: map[string]string{"EDGEFLOW_INGEST_MAX_INFLIGHT": "0"}, Want: "MAX_INFLIGHT"},
		{Env: map[string]string{"EDGEFLOW_NATS_URL": ""}, Want: "EDGEFLOW_NATS_URL"},
		{Env: map[string]string{"EDGEFLOW_STREAM_REPLICAS": "2"}, Want: "STREAM_REPLICAS"},
		{Env: map[string]string{"EDGEFLOW_INGEST_MAX_FUTURE": "soon"}, Want: "MAX_FUTURE"},
	}, func() error { _, err := LoadConfig(); return err })
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
