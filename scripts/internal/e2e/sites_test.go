package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/devenv"
)

// `task up:sites` as a newcomer runs it: a hub and two sites, each with
// its simulated sensors. Both sites' windows reach the hub's InfluxDB,
// each under its edge_site; the hub's dashboard shows both sites' devices
// live; each site's dashboard says its uplink is up.
func TestSitesDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the many-sites demo is skipped in -short mode")
	}
	requireServers(t)
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		devenv.RequireInstalled(t, fmt.Errorf("mosquitto_pub (the simulation's publisher): %w", err))
	}
	dir := t.TempDir()
	vars := []string{"NATS", "MQTT", "INFLUX", "INGEST", "PROCESSOR", "DASHBOARD", "NOTIFIER", "LEAF"}
	bases := strideBases(t, len(vars))
	env := []string{"EDGEFLOW_DEV_SITES=north,south", "EDGEFLOW_DEV_DATA_DIR=" + filepath.Join(dir, "data"),
		"EDGEFLOW_SIM_SILENT_AFTER=0", "EDGEFLOW_LOG_LEVEL=warn"}
	port := map[string]int{}
	for i, v := range vars {
		port[v] = bases[i]
		env = append(env, "EDGEFLOW_DEV_"+v+"_PORT="+strconv.Itoa(bases[i]))
	}
	url := func(v string, site int) string {
		return "http://127.0.0.1:" + strconv.Itoa(port[v]+100*site)
	}
	root, err := devenv.RepoRoot() // where devstack finds rules.yaml and the simulation
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	p, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
		Name: "devstack", Bin: bins.devstack, Dir: dir, WorkDir: root, Env: env,
		// The hub's dashboard answers first; the sites start after it.
		ReadyURL: url("DASHBOARD", 0) + "/readyz", ReadyTimeout: 2 * time.Minute, StopTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("task up:sites did not stop cleanly: %v", err)
		}
	})

	hub := devenv.InfluxDB{URL: url("INFLUX", 0), Database: "edgeflow"}
	eventuallyWithin(t, 3*time.Minute, "both sites' windows in the hub's InfluxDB", func() (bool, string) {
		ss, err := hub.Query(ctx, `SELECT count("count") FROM "edgeflow"."raw"."telemetry_10s" GROUP BY "edge_site"`)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]float64{}
		for _, s := range ss {
			if len(s.Values) > 0 && len(s.Values[0]) > 1 {
				got[s.Tags["edge_site"]], _ = s.Values[0][1].(float64)
			}
		}
		return got["north"] > 0 && got["south"] > 0 && len(got) == 2, fmt.Sprintf("windows by edge_site: %v", got)
	})
	eventuallyWithin(t, time.Minute, "the hub's dashboard shows both sites", func() (bool, string) {
		var o struct {
			Devices []struct{ Site, Device string }
		}
		if err := getJSON(ctx, url("DASHBOARD", 0)+"/api/overview", &o); err != nil {
			return false, err.Error()
		}
		var sites []string
		for _, d := range o.Devices {
			if !slices.Contains(sites, d.Site) {
				sites = append(sites, d.Site)
			}
		}
		slices.Sort(sites)
		north := slices.ContainsFunc(sites, func(s string) bool { return strings.HasPrefix(s, "north-") })
		south := slices.ContainsFunc(sites, func(s string) bool { return strings.HasPrefix(s, "south-") })
		return north && south, fmt.Sprintf("sites %v", sites)
	})
	for i, site := range []string{"north", "south"} {
		eventuallyWithin(t, time.Minute, site+"'s uplink up on its dashboard", func() (bool, string) {
			var pl struct {
				Uplink *struct {
					Site, State string
					Streams     []struct {
						Name    string
						Backlog uint64
					}
				}
			}
			if err := getJSON(ctx, url("DASHBOARD", i+1)+"/api/pipeline", &pl); err != nil {
				return false, err.Error()
			}
			if pl.Uplink == nil {
				return false, "no uplink in /api/pipeline"
			}
			return pl.Uplink.Site == site && pl.Uplink.State == "up", fmt.Sprintf("%+v", *pl.Uplink)
		})
	}
}

// strideBases returns n ports each free together with the two above it at
// the demo's stride (+100, +200: the two sites'), all distinct.
func strideBases(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	taken := map[int]bool{}
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			t.Fatal("no free ports at a stride of 100")
		}
		p, err := devenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p+200 > 65535 || taken[p] || taken[p+100] || taken[p+200] || !free(p+100) || !free(p+200) {
			continue
		}
		taken[p], taken[p+100], taken[p+200] = true, true, true
		out = append(out, p)
	}
	return out
}

func free(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// eventuallyWithin waits for ok, failing with what it last said.
func eventuallyWithin(t *testing.T, within time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, state := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, within, state)
		}
		time.Sleep(time.Second)
	}
}
