package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func decode[T any](t *testing.T, js string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	return v
}

// deploymentJSON is a Deployment as kubectl get -o json shows it.
func deploymentJSON(name string, generation, observed, replicas, statusReplicas, updated, available int) string {
	return fmt.Sprintf(`{"kind": "Deployment", "metadata": {"name": %q, "generation": %d}, "spec": {"replicas": %d},
 "status": {"observedGeneration": %d, "replicas": %d, "updatedReplicas": %d, "readyReplicas": %d, "availableReplicas": %d}}`,
		name, generation, replicas, observed, statusReplicas, updated, available, available)
}

// statefulSetJSON is a StatefulSet as the API server defaults it (RollingUpdate,
// partition 0).
func statefulSetJSON(name string, generation, observed, replicas, ready, updated int) string {
	return fmt.Sprintf(`{"kind": "StatefulSet", "metadata": {"name": %q, "generation": %d},
 "spec": {"replicas": %d, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}},
 "status": {"observedGeneration": %d, "replicas": %d, "readyReplicas": %d, "updatedReplicas": %d}}`,
		name, generation, replicas, observed, replicas, ready, updated)
}

func listJSON(items ...string) string { return `{"items": [` + strings.Join(items, ",\n") + `]}` }

// The rules of kubectl rollout status, which the wait used to run.
func TestRolledOut(t *testing.T) {
	for _, tc := range []struct {
		name, js, waiting string
		ready             bool
		err               error
	}{
		{"deployment rolled out", deploymentJSON("ingest", 2, 2, 1, 1, 1, 1), "", true, nil},
		{"deployment spec not observed", deploymentJSON("ingest", 3, 2, 1, 1, 1, 1), "spec update not observed yet", false, nil},
		{"deployment replicas not updated", deploymentJSON("processor", 2, 2, 3, 3, 1, 1), "1 of 3 replicas updated", false, nil},
		{"deployment old replica left", deploymentJSON("processor", 2, 2, 1, 2, 1, 1), "1 old replicas terminating", false, nil},
		{"deployment updated, not available", deploymentJSON("processor", 2, 2, 2, 2, 2, 1), "1 of 2 updated replicas available", false, nil},
		{"deployment past its deadline", `{"kind": "Deployment", "metadata": {"name": "notifier", "generation": 1}, "spec": {"replicas": 1},
		  "status": {"observedGeneration": 1, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}}`, "", false, errProgressDeadline},
		{"statefulset rolled out", statefulSetJSON("nats", 1, 1, 3, 3, 3), "", true, nil},
		{"statefulset never observed", statefulSetJSON("nats", 1, 0, 3, 3, 3), "spec update not observed yet", false, nil},
		{"statefulset pods not ready", statefulSetJSON("nats", 1, 1, 3, 1, 3), "1 of 3 pods ready", false, nil},
		{"statefulset pods not updated", statefulSetJSON("influxdb", 2, 2, 1, 1, 0), "0 of 1 pods updated", false, nil},
		{"statefulset without rollingUpdate: the revisions", `{"kind": "StatefulSet", "metadata": {"name": "m", "generation": 1}, "spec": {"replicas": 1},
		  "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "m-1", "updateRevision": "m-2"}}`, "0 of 1 pods updated", false, nil},
	} {
		ready, waiting, err := rolledOut(decode[workloadJSON](t, tc.js))
		if ready != tc.ready || waiting != tc.waiting || !errors.Is(err, tc.err) {
			t.Errorf("%s: %v %q %v; want %v %q %v", tc.name, ready, waiting, err, tc.ready, tc.waiting, tc.err)
		}
	}
}

// A pod not ready says why in kubectl's words, with what helps act on it.
func TestPodWait(t *testing.T) {
	for _, tc := range []struct{ name, js, want string }{
		{"ready", `{"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Running", "containerStatuses": [{"name": "a", "ready": true, "state": {"running": {}}}]}}`, ""},
		{"creating", `{"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Pending", "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}`,
			"ContainerCreating"},
		{"image does not pull", `{"spec": {"containers": [{"name": "a"}]}, "status": {"containerStatuses": [{"name": "a", "image": "reg.lan/edgeflow/ingest:v2",
		  "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}}`, "ImagePullBackOff reg.lan/edgeflow/ingest:v2"},
		{"crash loop", `{"spec": {"containers": [{"name": "a"}]}, "status": {"containerStatuses": [{"name": "a", "restartCount": 4,
		  "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}}`,
			"CrashLoopBackOff, 4 restarts, last Error (exit 1)"},
		{"readiness probe", `{"spec": {"containers": [{"name": "a", "readinessProbe": {"httpGet": {"path": "/readyz"}}}]},
		  "status": {"containerStatuses": [{"name": "a", "started": true, "state": {"running": {}}}]}}`, "readiness probe failing"},
		{"startup probe", `{"spec": {"containers": [{"name": "a", "startupProbe": {"tcpSocket": {}}, "readinessProbe": {}}]},
		  "status": {"containerStatuses": [{"name": "a", "started": false, "state": {"running": {}}}]}}`, "startup probe failing"},
		{"no probe", `{"spec": {"containers": [{"name": "a"}]}, "status": {"containerStatuses": [{"name": "a", "state": {"running": {}}}]}}`, "running, not ready"},
		{"exited", `{"spec": {"containers": [{"name": "a"}]}, "status": {"containerStatuses": [{"name": "a", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}`,
			"Terminated: OOMKilled (exit 137)"},
		{"two containers, one not ready", `{"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"containerStatuses": [
		  {"name": "a", "ready": true}, {"name": "b", "state": {"waiting": {"reason": "CreateContainerConfigError"}}}]}}`, "b CreateContainerConfigError"},
		{"unschedulable", `{"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
		  "message": "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.\nmore"}]}}`,
			"Unschedulable: 0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."},
		{"pending", `{"status": {"phase": "Pending"}}`, "Pending"},
		{"init container", `{"spec": {"containers": [{"name": "a"}]}, "status": {"initContainerStatuses": [{"name": "wait", "state": {"terminated": {"exitCode": 0}}},
		  {"name": "setup", "state": {"running": {}}}], "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}}`, "Init:setup running"},
		{"init container crashing", `{"status": {"initContainerStatuses": [{"name": "setup", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}`,
			"Init:CrashLoopBackOff, 2 restarts"},
		{"terminating", `{"metadata": {"deletionTimestamp": "2026-12-03T06:00:00Z"}, "status": {"containerStatuses": [{"name": "a", "ready": true}]}}`, "Terminating"},
	} {
		if got := podWait(decode[podJSON](t, tc.js)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestRolloutLine(t *testing.T) {
	rs := []rolloutState{
		{Kind: "statefulset", Name: "nats", Ready: true},
		{Kind: "deployment", Name: "ingest", Waiting: "0 of 1 replicas updated", Pods: []string{"ingest-7c-x: ImagePullBackOff reg/ingest:v2"}},
		{Kind: "deployment", Name: "processor", Waiting: "1 old replicas terminating"},
		{Kind: "statefulset", Name: "influxdb", Waiting: "0 of 1 pods ready", Pods: []string{"influxdb-0: readiness probe failing", "influxdb-1: Pending"}},
	}
	want := "rollouts 1/4 ready; waiting for ingest (ingest-7c-x: ImagePullBackOff reg/ingest:v2), processor (1 old replicas terminating), " +
		"influxdb (influxdb-0: readiness probe failing; influxdb-1: Pending)"
	if got := rolloutLine(rs); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := rolloutLine(rs[:1]); got != "rollouts 1/1 ready" {
		t.Errorf("all ready: %q", got)
	}
}

const podsNotReady = `{"items": [
 {"metadata": {"name": "nats-0", "labels": {"app.kubernetes.io/name": "nats"}}, "spec": {"containers": [{"name": "nats"}]},
  "status": {"phase": "Running", "containerStatuses": [{"name": "nats", "ready": true, "state": {"running": {}}}]}},
 {"metadata": {"name": "processor-5d-abc", "labels": {"app.kubernetes.io/name": "processor"}}, "spec": {"containers": [{"name": "processor"}]},
  "status": {"phase": "Pending", "containerStatuses": [{"name": "processor", "image": "reg/processor:v2", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}}
]}`

const podsReady = `{"items": [
 {"metadata": {"name": "processor-5d-abc", "labels": {"app.kubernetes.io/name": "processor"}}, "spec": {"containers": [{"name": "processor"}]},
  "status": {"phase": "Running", "containerStatuses": [{"name": "processor", "ready": true, "state": {"running": {}}}]}}
]}`

const getWorkloads = "-n edgeflow get deployments,statefulsets -o json"
const getPods = "-n edgeflow get pods -o json"

// WaitRollouts polls until every workload is rolled out, printing which are ready and
// why the pods of the others are not, then that all are.
func TestWaitRolloutsProgress(t *testing.T) {
	calls, _ := fakeKubectl(t, map[string]string{
		getWorkloads: listJSON(statefulSetJSON("nats", 1, 1, 1, 1, 1), deploymentJSON("processor", 2, 2, 1, 0, 0, 0)) + then +
			listJSON(statefulSetJSON("nats", 1, 1, 1, 1, 1), deploymentJSON("processor", 2, 2, 1, 0, 0, 0)) + then +
			listJSON(statefulSetJSON("nats", 1, 1, 1, 1, 1), deploymentJSON("processor", 2, 2, 1, 1, 1, 1)),
		getPods: podsNotReady + then + podsNotReady + then + podsReady,
	})
	k := testKube(t)
	var out bytes.Buffer
	k.Out = &out
	if err := k.WaitRollouts(context.Background(), []string{"nats", "processor"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// The second poll changes nothing: its line is not repeated.
	want := []*regexp.Regexp{
		regexp.MustCompile(`^\[deploy\] rollouts 1/2 ready; waiting for processor \(processor-5d-abc: ImagePullBackOff reg/processor:v2\), elapsed \d+s$`),
		regexp.MustCompile(`^\[deploy\] rollouts 2/2 ready, elapsed \d+s$`),
	}
	if len(lines) != len(want) {
		t.Fatalf("progress lines:\n%s\nwant %d", out.String(), len(want))
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %q, want it to match %s", lines[i], re)
		}
	}
	if n := len(slices.DeleteFunc(calls(), func(c string) bool { return c != getWorkloads })); n != 3 {
		t.Errorf("workloads read %d times, want 3 (until ready)", n)
	}
}

// A rollout that does not finish within the timeout fails naming the workload and what
// its pods wait for, and the pods and warnings are shown.
func TestWaitRolloutsTimeout(t *testing.T) {
	calls, _ := fakeKubectl(t, map[string]string{
		getWorkloads: listJSON(statefulSetJSON("nats", 1, 1, 1, 1, 1), deploymentJSON("processor", 2, 2, 1, 0, 0, 0)),
		getPods:      podsNotReady,
		"-n edgeflow get pods -l app.kubernetes.io/name=processor -o wide":              "processor-5d-abc 0/1 ImagePullBackOff",
		"-n edgeflow get events --sort-by=.lastTimestamp --field-selector type=Warning": "Failed to pull image",
	})
	k := testKube(t)
	var out bytes.Buffer
	k.Out = &out
	err := k.WaitRollouts(context.Background(), []string{"nats", "processor"}, 20*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "deployment/processor not ready within 20ms") ||
		!strings.Contains(err.Error(), "processor-5d-abc: ImagePullBackOff reg/processor:v2") {
		t.Fatalf("a rollout that times out: %v", err)
	}
	if !slices.Contains(calls(), "-n edgeflow get pods -l app.kubernetes.io/name=processor -o wide") {
		t.Errorf("the pods of the failed rollout were not shown: %q", calls())
	}
	if !strings.Contains(out.String(), "rollouts 1/2 ready; waiting for processor") {
		t.Errorf("no progress line:\n%s", out.String())
	}
}

// What waiting does not cure ends the wait at once: a workload that does not exist, a
// Deployment past its progress deadline.
func TestWaitRolloutsStops(t *testing.T) {
	deadline := `{"kind": "Deployment", "metadata": {"name": "notifier", "generation": 1}, "spec": {"replicas": 1},
	  "status": {"observedGeneration": 1, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}}`
	fakeKubectl(t, map[string]string{getWorkloads: listJSON(deadline), getPods: `{"items": []}`})
	k := testKube(t)
	k.Out = &bytes.Buffer{}
	start := time.Now()
	if err := k.WaitRollouts(context.Background(), []string{"nope"}, time.Minute); err == nil || !strings.Contains(err.Error(), `no Deployment or StatefulSet "nope"`) {
		t.Errorf("a missing workload: %v", err)
	}
	if err := k.WaitRollouts(context.Background(), []string{"notifier"}, time.Minute); !errors.Is(err, errProgressDeadline) ||
		!strings.Contains(err.Error(), "deployment/notifier exceeded its progress deadline") {
		t.Errorf("past the progress deadline: %v", err)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("took %s: waited instead of stopping", time.Since(start))
	}
}
