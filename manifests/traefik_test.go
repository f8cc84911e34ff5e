package manifests

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// middlewaresAnnotation is how an Ingress names Traefik Middlewares:
// <namespace>-<name>@kubernetescrd, comma-separated, applied in order.
const middlewaresAnnotation = "traefik.ingress.kubernetes.io/router.middlewares"

// The k3s overlays serve the dashboard over HTTPS through Traefik (issue 14): its Ingress
// has a TLS entry with the Secret task deploy makes (a kubernetes.io/tls pair), the
// Middleware it names exists in its namespace and redirects to https, and the default
// TLSStore serves the same certificate to clients that send no server name. The dev
// cluster's overlays have no Ingress and no Traefik object (no CRDs there).
func TestDashboardHTTPS(t *testing.T) {
	for _, overlay := range AllOverlays() {
		t.Run(overlay, func(t *testing.T) {
			objs := decode[map[string]any](t, overlay, kustomize(t, filepath.Join("overlays", overlay)))
			var ingresses, traefik []map[string]any
			for _, o := range objs {
				switch {
				case o["kind"] == "Ingress":
					ingresses = append(ingresses, o)
				case strings.HasPrefix(lookupStr(o, "apiVersion"), "traefik.io/"):
					traefik = append(traefik, o)
				}
			}
			if strings.HasPrefix(overlay, "devcluster") {
				if len(ingresses)+len(traefik) > 0 {
					t.Errorf("%d Ingresses and %d Traefik objects; the dev cluster has neither Traefik nor its CRDs", len(ingresses), len(traefik))
				}
				return
			}
			if len(ingresses) != 1 || lookupStr(ingresses[0], "metadata", "name") != "dashboard" {
				t.Fatalf("Ingresses %v, want the dashboard's only", objNames(ingresses))
			}
			ing := ingresses[0]
			ns := lookupStr(ing, "metadata", "namespace")
			tlsEntries, _ := lookup(ing, "spec", "tls").([]any)
			var secret string
			for _, e := range tlsEntries {
				if m, ok := e.(map[string]any); ok {
					secret = lookupStr(m, "secretName")
				}
			}
			if len(tlsEntries) != 1 || secret != "edgeflow-dashboard-tls" {
				t.Errorf("Ingress dashboard: tls %v, want one entry with Secret edgeflow-dashboard-tls", tlsEntries)
			}
			if keys := SecretKeys[secret]; !slices.Equal(keys, []string{"tls.crt", "tls.key"}) {
				t.Errorf("Ingress dashboard: Secret %q is not a TLS pair task deploy makes (keys %v)", secret, keys)
			}
			if c := lookupStr(ing, "spec", "ingressClassName"); c != "traefik" {
				t.Errorf("Ingress dashboard: class %q, want traefik", c)
			}

			// Every Middleware named exists; one redirects to https, permanently.
			redirect := false
			refs := strings.Split(lookupStr(ing, "metadata", "annotations", middlewaresAnnotation), ",")
			for _, ref := range refs {
				ref = strings.TrimSpace(ref)
				id, ok := strings.CutSuffix(ref, "@kubernetescrd")
				if !ok {
					t.Errorf("Ingress dashboard: middleware %q is not <namespace>-<name>@kubernetescrd", ref)
					continue
				}
				var mw map[string]any
				for _, o := range traefik {
					if o["kind"] == "Middleware" && lookupStr(o, "metadata", "namespace")+"-"+lookupStr(o, "metadata", "name") == id {
						mw = o
					}
				}
				if mw == nil {
					t.Errorf("Ingress dashboard: middleware %s names no Middleware of the overlay (%v)", ref, objNames(traefik))
					continue
				}
				if lookupStr(mw, "metadata", "namespace") != ns {
					t.Errorf("Middleware %s in namespace %q, the Ingress in %q (Traefik refuses cross-namespace references)", ref, lookupStr(mw, "metadata", "namespace"), ns)
				}
				if lookupStr(mw, "spec", "redirectScheme", "scheme") == "https" && lookup(mw, "spec", "redirectScheme", "permanent") == true {
					redirect = true
				}
			}
			if !redirect {
				t.Errorf("Ingress dashboard: no permanent redirectScheme to https among its middlewares %q", refs)
			}

			store := false
			for _, o := range traefik {
				if o["kind"] == "TLSStore" && lookupStr(o, "metadata", "name") == "default" {
					store = lookupStr(o, "spec", "defaultCertificate", "secretName") == secret && lookupStr(o, "metadata", "namespace") == ns
				}
			}
			if !store {
				t.Errorf("no TLSStore default in %s serving Secret %s to clients without SNI (%v)", ns, secret, objNames(traefik))
			}
		})
	}
}

// lookup follows keys through nested maps; nil when one is missing.
func lookup(o map[string]any, keys ...string) any {
	var v any = o
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func lookupStr(o map[string]any, keys ...string) string {
	s, _ := lookup(o, keys...).(string)
	return s
}

func objNames(objs []map[string]any) []string {
	var out []string
	for _, o := range objs {
		out = append(out, fmt.Sprintf("%v/%s", o["kind"], lookupStr(o, "metadata", "name")))
	}
	return out
}
