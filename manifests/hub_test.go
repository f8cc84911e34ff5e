package manifests

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// hubSecrets are made-up files of the Secrets the hub's NATS server mounts: users.conf
// with one leaf node user (as scripts/secrets -leaf-site writes it, with the password in
// clear, which nats-server takes as well as a bcrypt hash) and the certificate of its
// leaf node listener, for names.
func hubSecrets(t *testing.T, ca *secure.CA, user, password string, names ...string) map[string]map[string][]byte {
	t.Helper()
	// A server certificate, as scripts/secrets issues edgeflow-mqtt-tls.
	crt, key, err := ca.Issue(names, true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]map[string][]byte{
		"edgeflow-nats-leaf": {"users.conf": fmt.Appendf(nil, "users: [\n  {user: %q, password: %q}\n]\n", user, password)},
		"edgeflow-mqtt-tls":  {"ca.crt": ca.CertPEM, "tls.crt": crt, "tls.key": key},
	}
}

// overlays/hub: every check of a deployment holds with the hub's four workloads; its
// NATS server (nats-server loads the rendered configuration) has JetStream domain
// bus.HubDomain and a leaf node listener on 7422 with TLS, the users of Secret
// edgeflow-nats-leaf and no_advertise, which a Service and a NetworkPolicy open to
// the sites; its NATS users are the processor and the dashboard, the dashboard with
// exactly the permissions it has at a site; the processor gets EDGEFLOW_HUB_SITES
// from the edgeflow-hub ConfigMap, a valid hub configuration.
func TestHubOverlay(t *testing.T) {
	for _, overlay := range HubOverlays {
		t.Run(overlay, func(t *testing.T) {
			objs := Render(t, overlay)
			if sub := checkObjects(t, overlay, objs); sub != (IngestSubscription{}) {
				t.Errorf("ingest %+v at the hub, want none", sub)
			}
			ca, err := secure.NewCA("hub test CA", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			o, env := loadNATSConfig(t, objs, "nats-0", hubSecrets(t, ca, "greenhouse-north", "pw", "hub.example.com"))
			if o.JetStreamDomain != bus.HubDomain {
				t.Errorf("JetStream domain %q, want %q", o.JetStreamDomain, bus.HubDomain)
			}
			ln := o.LeafNode
			if ln.Port != 7422 {
				t.Errorf("leaf node port %d, want 7422", ln.Port)
			}
			if len(ln.Users) != 1 || ln.Users[0].Username != "greenhouse-north" || ln.Users[0].Password != "pw" {
				t.Errorf("leaf node authorization: %d users; want the one of Secret edgeflow-nats-leaf's users.conf", len(ln.Users))
			}
			if ln.TLSConfig == nil || len(ln.TLSConfig.Certificates) != 1 {
				t.Error("the leaf node listener has no TLS certificate")
			}
			if !ln.NoAdvertise {
				t.Error("the leaf node listener advertises other addresses (no_advertise: true)")
			}
			if len(ln.Remotes) != 0 {
				t.Errorf("the hub has %d leaf node remotes, want none", len(ln.Remotes))
			}
			var users []string
			perms := map[string]*server.Permissions{}
			for _, u := range o.Users {
				users = append(users, u.Username)
				perms[u.Username] = u.Permissions
			}
			slices.Sort(users)
			if !slices.Equal(users, []string{"dashboard", "processor"}) {
				t.Errorf("NATS users %v, want the dashboard and the processor", users)
			}
			if env["PROCESSOR_PASSWORD"] == "" || env["DASHBOARD_PASSWORD"] == "" {
				t.Error("the passwords of the processor and the dashboard are not in the server's environment")
			}
			// The site's users, of the k3s overlay the hub builds on.
			site, _ := loadNATSConfig(t, Render(t, "k3s"), "nats-0", nil)
			for _, u := range site.Users {
				if u.Username == "dashboard" && !reflect.DeepEqual(u.Permissions, perms["dashboard"]) {
					t.Errorf("the hub's dashboard permissions differ from a site's:\nhub  %+v\nsite %+v", perms["dashboard"], u.Permissions)
				}
			}

			var port, service, policy bool
			var processor *Container
			for i, w := range objs {
				if w.Kind == "Deployment" && w.Metadata.Name == "processor" {
					processor = &objs[i].Spec.Template.Spec.Containers[0]
				}
			}
			for _, m := range decode[map[string]any](t, overlay, kustomize(t, "overlays/"+overlay)) {
				switch {
				case m["kind"] == "StatefulSet" && lookupStr(m, "metadata", "name") == "nats":
					containers, _ := lookup(m, "spec", "template", "spec", "containers").([]any)
					c, _ := containers[0].(map[string]any)
					ports, _ := c["ports"].([]any)
					for _, p := range ports {
						if pm, _ := p.(map[string]any); pm["name"] == "leafnodes" && pm["containerPort"] == 7422 {
							port = true
						}
					}
				case m["kind"] == "Service" && lookupStr(m, "spec", "selector", "app.kubernetes.io/name") == "nats":
					ports, _ := lookup(m, "spec", "ports").([]any)
					for _, p := range ports {
						if pm, _ := p.(map[string]any); pm["port"] == 7422 && pm["targetPort"] == "leafnodes" {
							service = lookupStr(m, "spec", "type") == "LoadBalancer"
						}
					}
				case m["kind"] == "NetworkPolicy" && lookupStr(m, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") == "nats":
					rules, _ := lookup(m, "spec", "ingress").([]any)
					for _, r := range rules {
						rule, _ := r.(map[string]any)
						ports, _ := rule["ports"].([]any)
						for _, p := range ports {
							if pm, _ := p.(map[string]any); pm["port"] == 7422 && rule["from"] == nil {
								policy = true
							}
						}
					}
				}
			}
			if !port || !service || !policy {
				t.Errorf("leaf node port: on the container %v, a LoadBalancer Service %v, admitted from anywhere %v; want all", port, service, policy)
			}

			if processor == nil {
				t.Fatal("no processor")
			}
			cfg := hubConfig(t, objs, *processor)
			if len(cfg.Sites) == 0 {
				t.Fatal("the processor gets no EDGEFLOW_HUB_SITES: it would not run in hub mode")
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("the processor's hub configuration: %v", err)
			}
		})
	}
}

// hubConfig is the processor's bus.HubConfig as envconfig reads it from the
// ConfigMaps the container takes whole (envFrom).
func hubConfig(t *testing.T, objs []Object, c Container) bus.HubConfig {
	t.Helper()
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		found := false
		for _, o := range objs {
			if o.Kind == "ConfigMap" && o.Metadata.Name == ef.ConfigMapRef.Name {
				found = true
				for k, v := range o.Data {
					if strings.HasPrefix(k, "EDGEFLOW_HUB_") {
						t.Setenv(k, v)
					}
				}
			}
		}
		if !found {
			t.Errorf("processor: envFrom ConfigMap %s is not in the rendering", ef.ConfigMapRef.Name)
		}
	}
	var cfg bus.HubConfig
	if err := envconfig.Process("EDGEFLOW", &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The rendered configurations work together: a hub's NATS server started from
// overlays/hub's and a site's from components/uplink's (on loopback, the Secrets'
// files made up as scripts/secrets makes them) link up over TLS with the site's
// credentials; a client of the site reaches the hub's JetStream in domain hub, and
// the hub's streams source the site's across the link (bus.HubStreams), while a
// message on a subject of bus.SiteLocalSubjects stays at the site. This is one process
// on one machine: no two-cluster test runs here.
func TestSiteJoinsHub(t *testing.T) {
	const site = "greenhouse-north"
	ports, err := devenv.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	leafAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	ca, err := secure.NewCA("link test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	siteObjs, _ := RenderSite(t, "k3s", site, leafAddr)
	so, siteEnv := loadNATSConfig(t, siteObjs, "nats-0", map[string]map[string][]byte{"edgeflow-nats-uplink": {"ca.crt": ca.CertPEM}})
	ho, hubEnv := loadNATSConfig(t, Render(t, "hub"), "nats-0", hubSecrets(t, ca, siteEnv["UPLINK_USER"], siteEnv["UPLINK_PASSWORD"], "127.0.0.1"))

	ho.ServerName, ho.Host, ho.Port, ho.HTTPPort = "hub-0", "127.0.0.1", -1, 0
	ho.LeafNode.Host, ho.LeafNode.Port = "127.0.0.1", ports[0]
	ho.StoreDir = t.TempDir()
	hub := startServer(t, ho)
	so.ServerName, so.Host, so.Port, so.HTTPPort = site+"-0", "127.0.0.1", -1, 0
	so.StoreDir = t.TempDir()
	so.LeafNode.ReconnectInterval = 100 * time.Millisecond
	siteSrv := startServer(t, so)

	deadline := time.Now().Add(15 * time.Second)
	for siteSrv.NumLeafNodes() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if siteSrv.NumLeafNodes() != 1 {
		t.Fatal("the site's NATS server did not join the hub's")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connect := func(s *server.Server, user, password string) *nats.Conn {
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo(user, password), nats.CustomInboxPrefix("_INBOX_"+user))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	// The hub's processor creates the hub's copy of the site's AGGREGATES (as hub
	// mode does); the site's processor writes windows.
	hubJS, err := jetstream.New(connect(hub, "processor", hubEnv["PROCESSOR_PASSWORD"]))
	if err != nil {
		t.Fatal(err)
	}
	siteNC := connect(siteSrv, "processor", siteEnv["PROCESSOR_PASSWORD"])
	siteJS, err := jetstream.New(siteNC)
	if err != nil {
		t.Fatal(err)
	}
	sc := bus.StreamConfig{Replicas: 1, DedupWindow: time.Minute}
	if _, err := siteJS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: bus.StreamAggregates, Subjects: []string{"aggregates.>"}}); err != nil {
		t.Fatal(err)
	}
	hc := bus.HubConfig{Sites: []string{site}, Streams: []string{bus.StreamAggregates}, MaxAge: time.Hour, MaxBytes: 1 << 20}
	for _, cfg := range hc.HubStreams(sc) {
		if _, err := hubJS.CreateOrUpdateStream(ctx, cfg); err != nil {
			t.Fatalf("hub stream %s: %v", cfg.Name, err)
		}
	}
	// Anything published on a site-local subject at the hub would be seen here.
	hubNC := connect(hub, "dashboard", hubEnv["DASHBOARD_PASSWORD"])
	seen, err := hubNC.SubscribeSync("telemetry.*.*")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := siteJS.Publish(ctx, fmt.Sprintf("aggregates.10s.lab.t%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	ingest := connect(siteSrv, "ingest", siteEnv["INGEST_PASSWORD"])
	if err := ingest.Publish("telemetry.lab.t1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	// The site's dashboard asks the hub, in its domain, for its copy (bus.Uplink).
	dash := connect(siteSrv, "dashboard", siteEnv["DASHBOARD_PASSWORD"])
	up, err := bus.NewUplink(dash, bus.UplinkConfig{Site: site, Streams: []string{bus.StreamAggregates}, HubDomain: bus.HubDomain})
	if err != nil {
		t.Fatal(err)
	}
	var st []bus.UplinkStatus
	for {
		st, err = up.Check(ctx)
		if err == nil && len(st) == 1 && st[0].HubSeq == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the hub did not source the site's 3 windows: %+v, %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st[0].Backlog != 0 {
		t.Errorf("uplink %+v, want no backlog", st[0])
	}
	if m, err := seen.NextMsg(500 * time.Millisecond); err == nil {
		t.Errorf("%s, published at the site, reached the hub (bus.SiteLocalSubjects)", m.Subject)
	}
}

func startServer(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	o.NoLog, o.NoSigs = true, true
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats-server %s not ready", o.ServerName)
	}
	return s
}
