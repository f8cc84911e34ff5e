package manifests

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// AcceptLossAnnotation, set to "true" on the ingest StatefulSet, is the operator's
// opt-in to a shared subscription and to what it loses (components/ingest-share-group):
// Mosquitto 2.0 does not persist shared subscriptions, so what devices publish between
// a broker restart and ingest's re-subscription is dropped.
const AcceptLossAnnotation = "edgeflow.io/accept-loss-on-broker-restart"

// IngestSubscription is how ingest subscribes in a rendering.
type IngestSubscription struct {
	// Replicas are ingest's pods, each a persistent MQTT session of its own on the
	// broker (its client id is its pod name).
	Replicas int
	// ShareGroup is EDGEFLOW_INGEST_SHARE_GROUP; empty subscribes plainly.
	ShareGroup string
}

// ingestSubscription reads how ingest subscribes (its workload, and the ConfigMaps its
// environment comes from) and checks it against docs/configuration.md ("Brokers and ingest
// replicas"):
//   - a StatefulSet whose pods take their MQTT client id from their name, so a restarted
//     pod finds its persistent session, and what the broker queued for it, again, and
//     no two live pods ever share one id;
//   - subscribing plainly, one replica: every plain subscriber receives every message,
//     so a second replica would publish every reading again, and readings without seq
//     or ts are not deduplicated;
//   - a share group only with AcceptLossAnnotation "true", and that annotation only
//     with a share group.
func ingestSubscription(w Object, configMaps map[string]Object) (IngestSubscription, error) {
	name := w.Kind + "/" + w.Metadata.Name
	sub := IngestSubscription{Replicas: 1}
	if w.Spec.Replicas != nil {
		sub.Replicas = *w.Spec.Replicas
	}
	if w.Kind != "StatefulSet" {
		return sub, fmt.Errorf("%s: ingest must be a StatefulSet: its pod names are its MQTT client ids, stable across restarts and never held by two pods at once", name)
	}
	var c *Container
	for i := range w.Spec.Template.Spec.Containers {
		if w.Spec.Template.Spec.Containers[i].Name == "ingest" {
			c = &w.Spec.Template.Spec.Containers[i]
		}
	}
	if c == nil {
		return sub, fmt.Errorf("%s: no container named ingest", name)
	}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if g, ok := configMaps[ef.ConfigMapRef.Name].Data["EDGEFLOW_INGEST_SHARE_GROUP"]; ok {
				sub.ShareGroup = g
			}
		}
	}
	clientID := false
	for _, e := range c.Env {
		switch e.Name {
		case "EDGEFLOW_INGEST_SHARE_GROUP":
			if e.ValueFrom != nil {
				return sub, fmt.Errorf("%s: EDGEFLOW_INGEST_SHARE_GROUP from valueFrom; give it literally, so that the rendering shows how ingest subscribes", name)
			}
			sub.ShareGroup = e.Value
		case "EDGEFLOW_INGEST_CLIENT_ID":
			clientID = e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}
	}
	optIn, annotated := w.Metadata.Annotations[AcceptLossAnnotation]
	switch {
	case !clientID:
		return sub, fmt.Errorf("%s: EDGEFLOW_INGEST_CLIENT_ID must be the pod's name (fieldRef metadata.name), the persistent session's stable id", name)
	case sub.Replicas < 1:
		return sub, fmt.Errorf("%s: %d replicas; nothing would take the devices' messages", name, sub.Replicas)
	case sub.ShareGroup == "" && sub.Replicas > 1:
		return sub, fmt.Errorf("%s: %d replicas subscribing plainly: each receives every message and publishes every reading again (readings without seq or ts are not deduplicated); run one, or opt into a share group (components/ingest-share-group)", name, sub.Replicas)
	case sub.ShareGroup != "" && optIn != "true":
		return sub, fmt.Errorf("%s: share group %q without %s: \"true\": Mosquitto 2.0 drops what devices publish between its restart and ingest's re-subscription; the lossless default is one replica subscribing plainly (README, \"Brokers and ingest replicas\")", name, sub.ShareGroup, AcceptLossAnnotation)
	case sub.ShareGroup == "" && annotated:
		return sub, fmt.Errorf("%s: %s set but ingest subscribes plainly: remove the stale opt-in", name, AcceptLossAnnotation)
	}
	return sub, nil
}

// The rule itself, on one ingest StatefulSet at a time: what passes and what fails.
func TestIngestSubscriptionRule(t *testing.T) {
	ingest := func(kind string, replicas int, annotations, env string) Object {
		doc := fmt.Sprintf(`kind: %s
metadata:
  name: ingest
  annotations: {%s}
spec:
  replicas: %d
  template:
    spec:
      containers:
        - name: ingest
          envFrom: [{configMapRef: {name: shared}}]
          env:
            - name: EDGEFLOW_INGEST_CLIENT_ID
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
%s`, kind, annotations, replicas, env)
		var o Object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v\n%s", err, doc)
		}
		return o
	}
	const (
		plain  = "            - {name: EDGEFLOW_INGEST_SHARE_GROUP, value: \"\"}\n"
		shared = "            - {name: EDGEFLOW_INGEST_SHARE_GROUP, value: ingest}\n"
		optIn  = AcceptLossAnnotation + `: "true"`
	)
	noGroup := map[string]Object{"shared": {}}
	groupInConfigMap := map[string]Object{"shared": {Data: map[string]string{"EDGEFLOW_INGEST_SHARE_GROUP": "ingest"}}}
	for _, tc := range []struct {
		name       string
		w          Object
		configMaps map[string]Object
		want       IngestSubscription
		wantErr    string // "" passes
	}{
		{"one plain subscriber", ingest("StatefulSet", 1, "", plain), noGroup, IngestSubscription{1, ""}, ""},
		{"one plain subscriber, variable unset", ingest("StatefulSet", 1, "", ""), noGroup, IngestSubscription{1, ""}, ""},
		{"two plain subscribers", ingest("StatefulSet", 2, "", plain), noGroup, IngestSubscription{2, ""}, "publishes every reading again"},
		{"two plain subscribers, opted in", ingest("StatefulSet", 2, optIn, plain), noGroup, IngestSubscription{2, ""}, "publishes every reading again"},
		{"share group without the opt-in", ingest("StatefulSet", 2, "", shared), noGroup, IngestSubscription{2, "ingest"}, "without " + AcceptLossAnnotation},
		{"share group of one without the opt-in", ingest("StatefulSet", 1, "", shared), noGroup, IngestSubscription{1, "ingest"}, "without " + AcceptLossAnnotation},
		{"share group from the ConfigMap, no opt-in", ingest("StatefulSet", 2, "", ""), groupInConfigMap, IngestSubscription{2, "ingest"}, "without " + AcceptLossAnnotation},
		{"share group, opt-in not true", ingest("StatefulSet", 2, AcceptLossAnnotation+`: "yes"`, shared), noGroup, IngestSubscription{2, "ingest"}, "without " + AcceptLossAnnotation},
		{"share group with the opt-in", ingest("StatefulSet", 2, optIn, shared), noGroup, IngestSubscription{2, "ingest"}, ""},
		{"the env wins over the ConfigMap", ingest("StatefulSet", 1, "", plain), groupInConfigMap, IngestSubscription{1, ""}, ""},
		{"stale opt-in", ingest("StatefulSet", 1, optIn, plain), noGroup, IngestSubscription{1, ""}, "stale opt-in"},
		{"no replica", ingest("StatefulSet", 0, "", plain), noGroup, IngestSubscription{0, ""}, "nothing would take"},
		{"a Deployment", ingest("Deployment", 1, "", plain), noGroup, IngestSubscription{1, ""}, "must be a StatefulSet"},
		{"client id not the pod name", ingest("StatefulSet", 1, "", "            - {name: EDGEFLOW_INGEST_CLIENT_ID, value: ingest}\n"), noGroup, IngestSubscription{1, ""}, "must be the pod's name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ingestSubscription(tc.w, tc.configMaps)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("%+v, want %+v", got, tc.want)
			}
		})
	}
}

// components/ingest-share-group is the documented opt-in: on every overlay it makes two
// replicas share $share/ingest, carries the annotation, and every other check (the
// broker's memory for two sessions among them) still holds.
func TestIngestShareGroup(t *testing.T) {
	for _, overlay := range Overlays {
		t.Run(overlay, func(t *testing.T) {
			objs, _ := RenderWith(t, overlay, "ingest-share-group")
			if sub := checkObjects(t, overlay, objs); sub != (IngestSubscription{Replicas: 2, ShareGroup: "ingest"}) {
				t.Errorf("ingest %+v with the component, want two replicas sharing the group ingest", sub)
			}
		})
	}
}
