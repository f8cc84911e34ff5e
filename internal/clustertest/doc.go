// Package clustertest deploys edgeflow on a real Kubernetes cluster, the dev cluster of
// scripts/devcluster, exactly as docs/operations.md tells a K3s user (go tool task
// deploy, with OVERLAY=devcluster), and checks it end to end: exact window counts through
// the MQTT NodePort while a processor pod is deleted and while the processors, then the
// ingest pods, roll to a new revision, the dashboard, no restarts and no OOM kills, the memory of every pod
// under load, and a server-side dry run of every overlay. Last it deploys
// overlays/devcluster-ha (the NATS cluster of overlays/k3s-ha: three servers, R3 streams)
// and deletes a NATS server in the middle of a load: counts stay exact.
//
// It needs root (the dev cluster is a network namespace, iptables, mounts, cgroups) and
// runs only with EDGEFLOW_CLUSTER_TEST=1, which `go tool task test` sets: it starts the
// dev cluster when none runs and wipes it at the end (EDGEFLOW_CLUSTER_KEEP=1 keeps it).
package clustertest
