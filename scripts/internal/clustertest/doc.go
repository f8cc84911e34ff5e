// Package clustertest deploys edgeflow on a real Kubernetes cluster, each layout of the dev
// cluster of scripts/devcluster, exactly as docs/operations.md tells a K3s user (go tool
// task deploy), and checks it end to end with the same checks on both:
//
//   - TestDeployOnDevCluster: the stock layout (etcd, a process per component) with
//     overlays/devcluster (NodePorts, emptyDir volumes);
//   - TestDeployOnK3sLayout: the K3s layout (one k3s-server process on kine/SQLite,
//     local-path, Traefik, ServiceLB) with overlays/k3s as it is but for the images
//     (IMAGES=local: components/local-images): MQTT over TLS through the LoadBalancer
//     Service on the node's port 8883, the dashboard through the Traefik Ingress over
//     HTTPS, the volumes bound by local-path.
//
// Each checks exact window counts while a processor pod is deleted and while the
// processors, then the ingest pods, roll to a new revision; the dashboard over HTTP and in
// Chromium; no restarts and no OOM kills; the memory of every pod under load; Secrets
// encrypted in the datastore; a server-side dry run of every overlay. Last each deploys
// the NATS cluster of k3s-ha (three servers, R3 streams: overlays/devcluster-ha, or
// overlays/k3s-ha with components/one-node on the single node) and deletes a NATS server
// in the middle of a load: counts stay exact. TestK3sLayout checks the K3s layout itself.
//
// They need root (the dev cluster is a network namespace, iptables, mounts, cgroups) and
// run only with EDGEFLOW_CLUSTER_TEST=1 and EDGEFLOW_K3S_CLUSTER_TEST=1, which `go tool
// task test` sets: each starts its layout and wipes it at the end (EDGEFLOW_CLUSTER_KEEP=1
// keeps it). DEVCLUSTER_DIR applies to the layout LAYOUT names (stock by default).
package clustertest
