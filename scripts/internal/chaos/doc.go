// Package chaos runs the whole edgeflow pipeline on loopback (NATS as one or
// three nats-server processes, Mosquitto, InfluxDB, ingest, processor
// replicas, the notifier and the dashboard; the nats-servers started here,
// the rest by scripts/internal/launcher), drives it with the load generator, and meanwhile
// injects faults chosen by a seeded random source: SIGKILL and restart,
// graceful restart, and SIGSTOP/SIGCONT pauses. At the end it judges the run:
// every reading the broker acknowledged is counted exactly once in every
// window size, none was dead-lettered as late, every alert transition was
// notified once, and every service is ready again.
//
// Run is used by `go tool task chaos` (scripts/chaos) and by the end-to-end
// suite (scripts/internal/e2e/chaos_test.go); docs/chaos.md describes the method.
package chaos
