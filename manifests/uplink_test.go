package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// SiteOverlay is the overlay an operator writes for a site with an uplink
// (components/uplink, docs/operations.md#hub): {{manifests}} is the path to this
// folder, %s the overlay it builds on, the site's name and the hub's address.
const SiteOverlay = `namespace: edgeflow
resources: [{{manifests}}/overlays/%s]
components: [{{manifests}}/components/uplink]
configMapGenerator:
  - name: edgeflow-uplink
    literals:
      - EDGEFLOW_SITE_NAME=%s
      - hub=%s
`

// renderKustomization renders a kustomization written in a temporary folder, its
// {{manifests}} the relative path to this folder (kustomize takes no absolute
// paths), and returns the objects typed and as plain maps.
func renderKustomization(t *testing.T, what, body string) ([]Object, []map[string]any) {
	t.Helper()
	dir := t.TempDir()
	abs, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, abs)
	if err != nil {
		t.Fatal(err)
	}
	body = strings.ReplaceAll(body, "{{manifests}}", filepath.ToSlash(rel))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out := kustomize(t, dir)
	return decode[Object](t, what, out), decode[map[string]any](t, what, out)
}

// RenderSite renders overlay as a site named site with an uplink to hub, the way
// docs/operations.md tells the operator to.
func RenderSite(t *testing.T, overlay, site, hub string) ([]Object, []map[string]any) {
	t.Helper()
	return renderKustomization(t, fmt.Sprintf("overlays/%s with components/uplink", overlay), fmt.Sprintf(SiteOverlay, overlay, site, hub))
}

// A site with components/uplink, on one NATS server and on three: every check of the
// overlay still holds; each NATS server has JetStream domain = the site's name and one
// leaf node remote to the hub's address, over TLS with the hub's CA from the Secret,
// logging in with the Secret's user and password, and denying every subject of
// bus.SiteLocalSubjects both ways (nats-server itself loads the rendered
// configuration); the NATS pod may reach port 7422 anywhere; the dashboard gets the
// site's name, and what it reads of the hub (domain hub) its NATS permissions allow.
func TestUplinkComponent(t *testing.T) {
	const site, hub = "greenhouse-north", "hub.example.com:7422"
	ca, err := secure.NewCA("uplink test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, overlay := range []string{"k3s", "k3s-ha"} {
		t.Run(overlay, func(t *testing.T) {
			objs, raw := RenderSite(t, overlay, site, hub)
			if sub := checkObjects(t, overlay, objs); sub != (IngestSubscription{Replicas: 1}) {
				t.Errorf("ingest %+v; the uplink changes nothing of ingest", sub)
			}
			secrets := map[string]map[string][]byte{"edgeflow-nats-uplink": {"ca.crt": ca.CertPEM}}
			if overlay == "k3s-ha" {
				crt, key, err := ca.IssueFor([]string{"*.nats-headless"}, secure.PeerUsages, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				secrets["edgeflow-nats-route-tls"] = map[string][]byte{"ca.crt": ca.CertPEM, "tls.crt": crt, "tls.key": key}
			}
			o, env := loadNATSConfig(t, objs, "nats-0", secrets)
			if o.JetStreamDomain != site {
				t.Errorf("JetStream domain %q, want the site's name %q", o.JetStreamDomain, site)
			}
			if o.LeafNode.Port != 0 {
				t.Errorf("a site listens for leaf nodes on %d; only the hub does", o.LeafNode.Port)
			}
			if len(o.LeafNode.Remotes) != 1 {
				t.Fatalf("%d leaf node remotes, want one, to the hub", len(o.LeafNode.Remotes))
			}
			r := o.LeafNode.Remotes[0]
			if len(r.URLs) != 1 {
				t.Fatalf("remote URLs %v, want one", r.URLs)
			}
			u := r.URLs[0]
			pw, _ := u.User.Password()
			if u.Host != hub || u.User.Username() != env["UPLINK_USER"] || pw != env["UPLINK_PASSWORD"] || pw == "" {
				t.Errorf("remote %s, want the hub %s with the user and password of Secret edgeflow-nats-uplink", secure.RedactURLs(u.String()), hub)
			}
			if r.TLSConfig == nil || r.TLSConfig.RootCAs == nil {
				t.Error("the remote does not verify the hub with the CA of Secret edgeflow-nats-uplink (tls { ca_file })")
			}
			for what, got := range map[string][]string{"deny_imports": r.DenyImports, "deny_exports": r.DenyExports} {
				for _, subj := range bus.SiteLocalSubjects {
					if !slices.Contains(got, subj) {
						t.Errorf("remote %s lacks %s (bus.SiteLocalSubjects); has %v", what, subj, got)
					}
				}
			}

			// The dashboard: the site's name, and what bus.Uplink reads of the hub.
			var dash Container
			for _, w := range objs {
				if w.Kind == "Deployment" && w.Metadata.Name == "dashboard" {
					dash = w.Spec.Template.Spec.Containers[0]
				}
			}
			cfg := bus.UplinkConfig{Streams: bus.DefaultUplinkStreams, HubDomain: bus.HubDomain}
			for _, e := range dash.Env {
				ref := e.ValueFrom
				if ref == nil || ref.ConfigMapKeyRef == nil {
					continue
				}
				v := configMapKey(t, objs, "dashboard "+e.Name, ref.ConfigMapKeyRef.Name, ref.ConfigMapKeyRef.Key, ref.ConfigMapKeyRef.Optional)
				switch {
				case e.Name == "EDGEFLOW_SITE_NAME":
					cfg.Site = v
				case e.Name == "EDGEFLOW_UPLINK_STREAMS" && v != "":
					cfg.Streams = strings.Split(v, ",")
				case e.Name == "EDGEFLOW_UPLINK_HUB_DOMAIN" && v != "":
					cfg.HubDomain = v
				}
			}
			if cfg.Site != site {
				t.Errorf("dashboard EDGEFLOW_SITE_NAME %q, want %q", cfg.Site, site)
			}
			if err := cfg.Validate(); err != nil {
				t.Errorf("dashboard's uplink configuration: %v", err)
			}
			var allow []string
			for _, u := range o.Users {
				if u.Username == "dashboard" && u.Permissions != nil && u.Permissions.Publish != nil {
					allow = u.Permissions.Publish.Allow
				}
			}
			for _, subj := range []string{"$JS." + cfg.HubDomain + ".API.STREAM.INFO.*", "$JS." + cfg.HubDomain + ".API.STREAM.MSG.GET.*"} {
				if !slices.Contains(allow, subj) {
					t.Errorf("the dashboard may not publish %s (bus.Uplink.Check reads the hub's streams so)", subj)
				}
			}

			if !egressTo(raw, "nats", 7422) {
				t.Error("no NetworkPolicy lets the NATS pod reach the hub's leaf node port 7422")
			}
		})
	}

	// The component alone names no site: without the operator's edgeflow-uplink the
	// pods do not start, rather than run under a made-up name.
	for _, o := range Render(t, "k3s") {
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Metadata.Name, "edgeflow-uplink") {
			t.Errorf("overlays/k3s has ConfigMap %s", o.Metadata.Name)
		}
	}
	objs, _ := RenderWith(t, "k3s", "uplink")
	for _, o := range objs {
		if o.Kind == "ConfigMap" && strings.HasPrefix(o.Metadata.Name, "edgeflow-uplink") {
			t.Errorf("components/uplink generates ConfigMap %s: the site's name must be the operator's", o.Metadata.Name)
		}
	}
}

// egressTo reports whether a NetworkPolicy selecting the pods of app lets them
// reach TCP port anywhere: an egress rule for that port with no peer.
func egressTo(objs []map[string]any, app string, port int) bool {
	for _, o := range objs {
		if o["kind"] != "NetworkPolicy" || lookupStr(o, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") != app {
			continue
		}
		rules, _ := lookup(o, "spec", "egress").([]any)
		for _, r := range rules {
			rule, _ := r.(map[string]any)
			if rule == nil || rule["to"] != nil {
				continue
			}
			ports, _ := rule["ports"].([]any)
			for _, p := range ports {
				pm, _ := p.(map[string]any)
				if pm != nil && pm["port"] == port && (pm["protocol"] == nil || pm["protocol"] == "TCP") {
					return true
				}
			}
		}
	}
	return false
}
