package chaos

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func testTargets() []*target {
	all := []string{KindKill, KindRestart, KindPause}
	return []*target{
		{name: "nats-1", kinds: all}, {name: "mosquitto", kinds: []string{KindRestart, KindPause}},
		{name: "influxd", kinds: all}, {name: "ingest", kinds: all},
		{name: "processor-p1", kinds: all}, {name: "processor-p2", kinds: all},
		{name: "notifier", kinds: all}, {name: "dashboard", kinds: []string{KindKill, KindPause}},
	}
}

func testConfig(seed uint64) *Config {
	c := &Config{Bin: "bin", Dir: "dir", Seed: seed}
	c.defaults()
	return c
}

// The same seed draws the same faults; a round of the bag covers every
// target once; down times and gaps stay within their bounds; Mosquitto is
// never SIGKILLed.
func TestPlannerIsSeededAndCoversTargets(t *testing.T) {
	draw := func(seed uint64, n int) []plan {
		p := newPlanner(testConfig(seed), testTargets())
		var out []plan
		for range n {
			pl, ok := p.next()
			if !ok {
				t.Fatal("no plan")
			}
			out = append(out, pl)
		}
		return out
	}
	a, b := draw(7, 24), draw(7, 24)
	for i := range a {
		if a[i].target.name != b[i].target.name || a[i].kind != b[i].kind || a[i].down != b[i].down || a[i].gap != b[i].gap {
			t.Fatalf("seed 7 drew %+v then %+v at %d", a[i], b[i], i)
		}
	}
	if c := draw(8, 24); c[0].target.name == a[0].target.name && c[1].target.name == a[1].target.name && c[2].target.name == a[2].target.name {
		t.Error("seeds 7 and 8 drew the same first three targets")
	}
	cfg := testConfig(7)
	for round := range 3 {
		seen := map[string]bool{}
		for _, p := range a[round*8 : round*8+8] {
			seen[p.target.name] = true
			if p.target.name == "mosquitto" && p.kind == KindKill {
				t.Error("mosquitto drawn for a SIGKILL")
			}
			if p.down < cfg.MaxDown/4 || p.down > cfg.MaxDown {
				t.Errorf("down %s outside [%s, %s]", p.down, cfg.MaxDown/4, cfg.MaxDown)
			}
			if p.gap < cfg.MinGap || p.gap > cfg.MaxGap {
				t.Errorf("gap %s outside [%s, %s]", p.gap, cfg.MinGap, cfg.MaxGap)
			}
		}
		if len(seen) != 8 {
			t.Errorf("round %d covered %d of 8 targets", round, len(seen))
		}
	}
}

func TestPlannerSelection(t *testing.T) {
	c := testConfig(1)
	c.Targets, c.Kinds = []string{"nats", "processor-p2"}, []string{KindKill}
	p := newPlanner(c, testTargets())
	for range 10 {
		pl, _ := p.next()
		if (pl.target.name != "nats-1" && pl.target.name != "processor-p2") || pl.kind != KindKill {
			t.Fatalf("drew %s %s", pl.kind, pl.target.name)
		}
	}
	c.Targets, c.Kinds = []string{"mosquitto"}, []string{KindKill}
	if _, ok := newPlanner(c, testTargets()).next(); ok {
		t.Fatal("a kill of mosquitto was drawn")
	}
}

func TestConfigValidate(t *testing.T) {
	c := testConfig(1)
	if err := c.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := *c
	bad.NATSServers, bad.Kinds = 2, []string{"explode"}
	bad.IdleGrace = time.Second
	err := bad.validate()
	for _, want := range []string{"NATSServers 2", `"explode"`, "idle grace 1s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to name %s", err, want)
		}
	}
}

// A cluster member routes to the two others, on their route ports; a
// single server is in no cluster.
func TestNATSOptions(t *testing.T) {
	ports := []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
	o := natsOptions(1, 3, ports, "/d")
	if o.ServerName != "nats-2" || o.Port != 4 || o.HTTPPort != 5 || o.StoreDir != "/d/nats-2" || o.Cluster == nil ||
		o.Cluster.Port != 6 || !slices.Equal(o.Cluster.Routes, []string{"nats-route://127.0.0.1:3", "nats-route://127.0.0.1:9"}) {
		t.Errorf("member 2 of 3: %+v (cluster %+v)", o, o.Cluster)
	}
	if single := natsOptions(0, 1, ports, "/d"); single.Cluster != nil {
		t.Errorf("a single server in a cluster: %+v", single.Cluster)
	}
}
