package main

import (
	"strings"
	"testing"
)

// The services do not get InfluxDB's admin credential: with -influx18 the
// processor's token is its own user's (write-only, set up by task deploy)
// and the dashboard's too (read-only); 2.x tokens are made by InfluxDB for
// the authorizations task deploy creates, so the tool makes none. No
// service-token (the admin's) is left to be mounted.
func TestServicesGetTheirOwnInfluxCredentials(t *testing.T) {
	dir := t.TempDir()
	generate(t, Options{Dir: dir, Influx18: true})
	files := snapshot(t, dir)
	admin := string(files["edgeflow-influxdb/admin-password"])
	for _, u := range InfluxUsers {
		pw := string(files["edgeflow-influxdb/"+u+"-password"])
		if len(pw) != 43 {
			t.Errorf("%s-password: %d bytes, want a 43-character token", u, len(pw))
		}
		if got, want := string(files["edgeflow-influxdb/"+u+"-token"]), u+":"+pw; got != want {
			t.Errorf("%s-token %q, want %q", u, got, want)
		}
		if strings.Contains(string(files["edgeflow-influxdb/"+u+"-token"]), admin) {
			t.Errorf("%s-token holds the admin password", u)
		}
	}
	if _, ok := files["edgeflow-influxdb/service-token"]; ok {
		t.Error("service-token (the admin's credential for the services) is still made")
	}

	dir2 := t.TempDir()
	generate(t, Options{Dir: dir2})
	files = snapshot(t, dir2)
	for _, k := range []string{"service-token", "processor-token", "dashboard-token"} {
		if _, ok := files["edgeflow-influxdb/"+k]; ok {
			t.Errorf("2.x: %s made by the tool, not by InfluxDB for its authorization", k)
		}
	}
}
