package manifests

import (
	"maps"
	"slices"
	"strconv"
	"testing"
)

// Services are edgeflow's own workloads, each serving /metrics beside /healthz and
// /readyz on one port (internal/service.Handler).
var Services = []string{"dashboard", "ingest", "notifier", "processor"}

// ScraperLabel, set to "true" on a namespace and on Prometheus's pods there, is what
// components/prometheus-policy admits to the services' metrics ports.
const ScraperLabel = "edgeflow.io/metrics-scraper"

// Selector is a Kubernetes label selector.
type Selector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

// Matches reports whether labels satisfy s; an empty selector matches everything.
func (s *Selector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range s.MatchExpressions {
		v, ok := labels[e.Key]
		switch e.Operator {
		case "In":
			if !ok || !slices.Contains(e.Values, v) {
				return false
			}
		case "NotIn":
			if ok && slices.Contains(e.Values, v) {
				return false
			}
		case "Exists":
			if !ok {
				return false
			}
		case "DoesNotExist":
			if ok {
				return false
			}
		default:
			panic("selector operator " + e.Operator)
		}
	}
	return true
}

// Scraped is the part of a rendered object the Prometheus checks read: workloads'
// pod templates, NetworkPolicies and PodMonitors.
type Scraped struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []struct {
					Name  string `yaml:"name"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					ReadinessProbe *struct {
						HTTPGet *struct {
							Path string `yaml:"path"`
							Port string `yaml:"port"`
						} `yaml:"httpGet"`
					} `yaml:"readinessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// NetworkPolicy
		PodSelector *Selector `yaml:"podSelector"`
		PolicyTypes []string  `yaml:"policyTypes"`
		Ingress     []struct {
			From []struct {
				NamespaceSelector *Selector `yaml:"namespaceSelector"`
				PodSelector       *Selector `yaml:"podSelector"`
				IPBlock           any       `yaml:"ipBlock"`
			} `yaml:"from"`
			Ports []struct {
				Protocol string `yaml:"protocol"`
				Port     string `yaml:"port"`
			} `yaml:"ports"`
		} `yaml:"ingress"`
		// PodMonitor
		Selector            *Selector `yaml:"selector"`
		PodMetricsEndpoints []struct {
			Port string `yaml:"port"`
			Path string `yaml:"path"`
		} `yaml:"podMetricsEndpoints"`
	} `yaml:"spec"`
}

// port resolves a port of the workload's containers, by number or by name; 0 if none.
func (w Scraped) port(p string) int {
	for _, c := range w.Spec.Template.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == p || strconv.Itoa(cp.ContainerPort) == p {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// metricsPort is the port the service's readiness probe reads: the server that
// answers /readyz answers /metrics too.
func (w Scraped) metricsPort(t *testing.T) int {
	t.Helper()
	for _, c := range w.Spec.Template.Spec.Containers {
		if c.Name == w.Metadata.Name && c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil {
			if p := w.port(c.ReadinessProbe.HTTPGet.Port); p != 0 {
				return p
			}
		}
	}
	t.Fatalf("%s: no container of its name with an HTTP readiness probe on a declared port", w.Metadata.Name)
	return 0
}

// Peer is a pod that connects: its namespace's labels and its own.
type Peer struct {
	Namespace       string
	NamespaceLabels map[string]string
	Labels          map[string]string
}

// Reach is what the NetworkPolicies admit a peer to: the ports of each workload
// ("*": every port), as the Kubernetes rules have it: a pod selected by no policy
// with Ingress is open; otherwise a connection needs a rule of a policy selecting it
// whose from admits the peer (none: anyone; a podSelector alone: pods of the policy's
// namespace; a namespaceSelector with one: both must match; an ipBlock: counted as
// admitting, the worst case) and whose ports hold the port (none: all).
func Reach(workloads, policies []Scraped, peer Peer) map[string][]string {
	reach := map[string][]string{}
	for _, w := range workloads {
		var ports []string
		selected := false
		for _, p := range policies {
			if !slices.Contains(p.Spec.PolicyTypes, "Ingress") || p.Metadata.Namespace != w.Metadata.Namespace ||
				p.Spec.PodSelector == nil || !p.Spec.PodSelector.Matches(w.Spec.Template.Metadata.Labels) {
				continue
			}
			selected = true
			for _, rule := range p.Spec.Ingress {
				admitted := len(rule.From) == 0
				for _, f := range rule.From {
					switch {
					case f.IPBlock != nil:
						admitted = true
					case f.NamespaceSelector != nil:
						if f.NamespaceSelector.Matches(peer.NamespaceLabels) && (f.PodSelector == nil || f.PodSelector.Matches(peer.Labels)) {
							admitted = true
						}
					case f.PodSelector != nil:
						if peer.Namespace == p.Metadata.Namespace && f.PodSelector.Matches(peer.Labels) {
							admitted = true
						}
					}
				}
				if !admitted {
					continue
				}
				if len(rule.Ports) == 0 {
					ports = append(ports, "*")
				}
				for _, rp := range rule.Ports {
					if n := w.port(rp.Port); n != 0 {
						ports = append(ports, strconv.Itoa(n))
					} else {
						// A named port the pod does not declare admits nothing.
						if _, err := strconv.Atoi(rp.Port); err == nil {
							ports = append(ports, rp.Port)
						}
					}
				}
			}
		}
		if !selected {
			ports = []string{"*"}
		}
		slices.Sort(ports)
		if ports = slices.Compact(ports); len(ports) > 0 {
			reach[w.Metadata.Name] = ports
		}
	}
	return reach
}

// split sorts a rendering into workloads, NetworkPolicies and PodMonitors.
func split(objs []Scraped) (workloads, policies, monitors []Scraped) {
	for _, o := range objs {
		switch o.Kind {
		case "Deployment", "StatefulSet":
			workloads = append(workloads, o)
		case "NetworkPolicy":
			policies = append(policies, o)
		case "PodMonitor":
			monitors = append(monitors, o)
		}
	}
	return
}

// Every overlay annotates each service's pods for annotation-based scrapers with the
// port its /readyz and /metrics are served on, and no other pod: NATS's monitoring
// port is JSON, not the Prometheus format.
func TestPrometheusAnnotations(t *testing.T) {
	for _, overlay := range AllOverlays() {
		t.Run(overlay, func(t *testing.T) {
			workloads, _, monitors := split(decode[Scraped](t, overlay, kustomize(t, "overlays/"+overlay)))
			if len(monitors) > 0 {
				t.Errorf("%d PodMonitors in overlays/%s: their CRD may not exist; they belong in components/prometheus", len(monitors), overlay)
			}
			var annotated []string
			for _, w := range workloads {
				a := w.Spec.Template.Metadata.Annotations
				if a["prometheus.io/scrape"] != "true" {
					continue
				}
				annotated = append(annotated, w.Metadata.Name)
				if want := strconv.Itoa(w.metricsPort(t)); a["prometheus.io/port"] != want {
					t.Errorf("%s: prometheus.io/port %q, want %s (the port of its readiness probe)", w.Metadata.Name, a["prometheus.io/port"], want)
				}
				if a["prometheus.io/path"] != "/metrics" {
					t.Errorf("%s: prometheus.io/path %q, want /metrics", w.Metadata.Name, a["prometheus.io/path"])
				}
			}
			slices.Sort(annotated)
			// A hub runs the processor and the dashboard only.
			want := Services
			if slices.Contains(HubOverlays, overlay) {
				want = []string{"dashboard", "processor"}
			}
			if !slices.Equal(annotated, want) {
				t.Errorf("pods annotated prometheus.io/scrape: %v, want %v", annotated, want)
			}
		})
	}
}

// components/prometheus: one PodMonitor per service, each selecting that workload's
// pods only and naming the port its annotation gives; and the scrape policy, which
// admits pods labelled ScraperLabel in a namespace labelled so to each service's
// metrics port and to nothing else, and admits nobody else anything new.
// components/prometheus-policy is the policy alone.
func TestPrometheusComponent(t *testing.T) {
	scraper := Peer{Namespace: "monitoring",
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring", ScraperLabel: "true"},
		Labels:          map[string]string{"app.kubernetes.io/name": "prometheus", ScraperLabel: "true"}}
	others := map[string]Peer{
		"the scraper": scraper,
		"a labelled pod in an unlabelled namespace": {Namespace: "default",
			NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "default"}, Labels: scraper.Labels},
		"an unlabelled pod in the scraper's namespace": {Namespace: "monitoring",
			NamespaceLabels: scraper.NamespaceLabels, Labels: map[string]string{"app.kubernetes.io/name": "grafana"}},
		"a labelled pod of edgeflow's namespace": {Namespace: "edgeflow",
			NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "edgeflow"}, Labels: scraper.Labels},
	}
	for _, overlay := range []string{"k3s", "devcluster-ha"} {
		for _, component := range []string{"prometheus", "prometheus-policy"} {
			t.Run(overlay+"+"+component, func(t *testing.T) {
				what, out := renderWith(t, overlay, component)
				// Everything else every rendering must hold still holds.
				checkObjects(t, overlay, decode[Object](t, what, out))
				workloads, policies, _ := split(decode[Scraped](t, overlay, kustomize(t, "overlays/"+overlay)))
				_, withPolicies, withMonitors := split(decode[Scraped](t, what, out))

				metrics := map[string][]string{}
				for _, w := range workloads {
					if slices.Contains(Services, w.Metadata.Name) {
						metrics[w.Metadata.Name] = []string{strconv.Itoa(w.metricsPort(t))}
					}
				}
				for name, peer := range others {
					before, after := Reach(workloads, policies, peer), Reach(workloads, withPolicies, peer)
					want := maps.Clone(before)
					if name == "the scraper" {
						for w, p := range metrics {
							want[w] = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(before[w]), p...))))
						}
					}
					if !maps.EqualFunc(after, want, slices.Equal) {
						t.Errorf("%s reaches %v with the component, want %v (without: %v)", name, after, want, before)
					}
				}
				// The component's own policies admit the scraper to the metrics ports only.
				var added []Scraped
				for _, p := range withPolicies {
					if !slices.ContainsFunc(policies, func(q Scraped) bool { return q.Metadata.Name == p.Metadata.Name }) {
						added = append(added, p)
					}
				}
				if got := onlySelected(Reach(workloads, added, scraper), workloads, added); !maps.EqualFunc(got, metrics, slices.Equal) {
					t.Errorf("the component's policies admit the scraper to %v, want %v", got, metrics)
				}

				if component == "prometheus-policy" {
					if len(withMonitors) > 0 {
						t.Errorf("prometheus-policy has %d PodMonitors; it is for clusters without their CRD", len(withMonitors))
					}
					return
				}
				checkPodMonitors(t, workloads, withMonitors)
			})
		}
	}
}

// onlySelected drops the workloads no policy of policies selects (Reach counts
// them open: they are, but not by these policies).
func onlySelected(reach map[string][]string, workloads, policies []Scraped) map[string][]string {
	out := map[string][]string{}
	for _, w := range workloads {
		for _, p := range policies {
			if p.Spec.PodSelector.Matches(w.Spec.Template.Metadata.Labels) && reach[w.Metadata.Name] != nil {
				out[w.Metadata.Name] = reach[w.Metadata.Name]
			}
		}
	}
	return out
}

func checkPodMonitors(t *testing.T, workloads, monitors []Scraped) {
	t.Helper()
	var monitored []string
	for _, m := range monitors {
		name := "PodMonitor " + m.Metadata.Name
		if m.Metadata.Namespace != "edgeflow" {
			t.Errorf("%s: namespace %q, want edgeflow (a PodMonitor selects pods of its own namespace)", name, m.Metadata.Namespace)
		}
		var selected []Scraped
		for _, w := range workloads {
			if m.Spec.Selector != nil && m.Spec.Selector.Matches(w.Spec.Template.Metadata.Labels) {
				selected = append(selected, w)
			}
		}
		if len(selected) != 1 {
			var names []string
			for _, w := range selected {
				names = append(names, w.Metadata.Name)
			}
			t.Errorf("%s selects the pods of %v, want exactly one workload's", name, names)
			continue
		}
		w := selected[0]
		monitored = append(monitored, w.Metadata.Name)
		if len(m.Spec.PodMetricsEndpoints) != 1 {
			t.Errorf("%s: %d endpoints, want 1", name, len(m.Spec.PodMetricsEndpoints))
			continue
		}
		e := m.Spec.PodMetricsEndpoints[0]
		a := w.Spec.Template.Metadata.Annotations
		if got := w.port(e.Port); got == 0 || got != w.metricsPort(t) || strconv.Itoa(got) != a["prometheus.io/port"] {
			t.Errorf("%s: port %q is %d on %s, want its metrics port %d (annotated %s)", name, e.Port, got, w.Metadata.Name, w.metricsPort(t), a["prometheus.io/port"])
		}
		if e.Path != a["prometheus.io/path"] {
			t.Errorf("%s: path %q, annotation %q", name, e.Path, a["prometheus.io/path"])
		}
	}
	slices.Sort(monitored)
	if !slices.Equal(monitored, Services) {
		t.Errorf("PodMonitors cover %v, want each of %v once", monitored, Services)
	}
}
