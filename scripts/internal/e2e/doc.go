// Package e2e holds the end-to-end tests of the pipeline: the real service
// binaries (built with -race) between a real Mosquitto, an embedded NATS
// server and a real InfluxDB 1.8.3, driven by the real load generator.
package e2e
