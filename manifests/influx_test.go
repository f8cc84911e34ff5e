package manifests

import (
	"testing"
)

// The processor and the dashboard get their own InfluxDB credentials (the
// processor's may only write, the dashboard's only read; task deploy sets
// them up), never the admin's, which only InfluxDB itself gets; and both
// are told the raw bucket, so that raw readings and the short-lived windows
// are kept apart from the coarsest windows (docs/operations.md, "InfluxDB
// retention").
func TestServicesGetTheirOwnInfluxCredentials(t *testing.T) {
	want := map[string]string{"processor": "processor-token", "dashboard": "dashboard-token"}
	for _, overlay := range AllOverlays() {
		seen := map[string]bool{}
		for _, o := range Render(t, overlay) {
			if o.Kind == "ConfigMap" && len(o.Data) > 0 && o.Data["EDGEFLOW_INFLUX_URL"] != "" {
				if got := o.Data["EDGEFLOW_INFLUX_RAW_BUCKET"]; got != "edgeflow/raw" {
					t.Errorf("%s: ConfigMap %s: EDGEFLOW_INFLUX_RAW_BUCKET=%q, want edgeflow/raw", overlay, o.Metadata.Name, got)
				}
			}
			if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
				continue
			}
			for _, c := range o.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "edgeflow-influxdb" {
						continue
					}
					key := e.ValueFrom.SecretKeyRef.Key
					if o.Metadata.Name == "influxdb" {
						continue
					}
					if e.Name == "EDGEFLOW_INFLUX_TOKEN" && key == want[o.Metadata.Name] {
						seen[o.Metadata.Name] = true
						continue
					}
					t.Errorf("%s: %s %s gets %s from edgeflow-influxdb key %s", overlay, o.Metadata.Name, c.Name, e.Name, key)
				}
			}
		}
		for svc, key := range want {
			if !seen[svc] {
				t.Errorf("%s: %s gets no EDGEFLOW_INFLUX_TOKEN from edgeflow-influxdb key %s", overlay, svc, key)
			}
		}
	}
}
