package main

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/metrics"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"github.com/cloudnativelabs/kube-router/v2/pkg/utils"
	krversion "github.com/cloudnativelabs/kube-router/v2/pkg/version"
	"github.com/coreos/go-iptables/iptables"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	cloudproviderapi "k8s.io/cloud-provider/api"
	"k8s.io/component-base/metrics/legacyregistry"
)

// kube-router's metrics join the components' registry, as in K3s: kube-apiserver's
// /metrics serves them.
func init() {
	metrics.DefaultRegisterer = legacyregistry.Registerer()
	metrics.DefaultGatherer = legacyregistry.DefaultGatherer
}

// netpolConfig is what the network policy controller needs to know of the cluster.
type netpolConfig struct {
	node          string // this node's name (kubelet's --hostname-override)
	serviceCIDR   string // kube-apiserver's --service-cluster-ip-range
	nodePortRange string // kube-apiserver's --service-node-port-range, FROM-TO
}

// runNetworkPolicy starts kube-router's network policy controller (its
// pkg/controllers/netpol, v2.1.0) the way K3s's agent starts it (pkg/agent/netpol): the
// firewall part of kube-router only, no routing or service proxy, in this process and
// in the node's network namespace. It enforces NetworkPolicies with iptables chains
// (KUBE-ROUTER-INPUT/FORWARD/OUTPUT and one chain per pod and policy) and ip sets of
// the selected pods, through the iptables, iptables-save/-restore and ipset commands.
// It returns once the controller runs; the controller stops with ctx.
func runNetworkPolicy(ctx context.Context, cs kubernetes.Interface, c netpolConfig) error {
	// As K3s: no ipset, no policy controller (and say so).
	set, err := utils.NewIPSet(false)
	if err != nil {
		return fmt.Errorf("ipset unavailable (install the ipset package): %w", err)
	}
	if err := set.Save(); err != nil {
		return fmt.Errorf("ipset save: %w", err)
	}

	// kube-router reads the node's addresses once, at start: wait for kubelet to have
	// registered the node with an InternalIP (and for no cloud provider's taint).
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, c.node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, t := range node.Spec.Taints {
			if t.Key == cloudproviderapi.TaintExternalCloudProvider {
				return false, nil
			}
		}
		return nodeInternalIP(node) != "", nil
	})
	if err != nil {
		return fmt.Errorf("node %s with an InternalIP: %w", c.node, err)
	}

	cfg := options.NewKubeRouterConfig()
	cfg.ClusterIPCIDRs = []string{c.serviceCIDR}
	cfg.EnableIPv4, cfg.EnableIPv6 = true, false
	cfg.NodePortRange = strings.ReplaceAll(c.nodePortRange, "-", ":")
	cfg.HostnameOverride = c.node
	cfg.MetricsEnabled = true
	cfg.RunFirewall, cfg.RunRouter, cfg.RunServiceProxy = true, false, false

	stop := ctx.Done()
	factory := informers.NewSharedInformerFactory(cs, 0)
	pods := factory.Core().V1().Pods().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	policies := factory.Networking().V1().NetworkPolicies().Informer()
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	ipt, err := iptables.NewWithProtocol(iptables.ProtocolIPv4)
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	ipset, err := utils.NewIPSet(false)
	if err != nil {
		return fmt.Errorf("ipset: %w", err)
	}

	// The controller reports heartbeats to kube-router's health controller and expects
	// its metrics controller's; both run here without their HTTP servers, as in K3s.
	var wg sync.WaitGroup // kube-router's Run functions want one; nothing waits on it
	health := make(chan *healthcheck.ControllerHeartbeat)
	hc, err := healthcheck.NewHealthController(cfg)
	if err != nil {
		return err
	}
	hc.SetAlive()
	wg.Add(2)
	go hc.RunCheck(health, stop, &wg)
	go metricsHeartbeat(health, stop, &wg)

	npc, err := netpol.NewNetworkPolicyController(cs, cfg, pods, policies, namespaces, &sync.Mutex{},
		map[corev1.IPFamily]utils.IPTablesHandler{corev1.IPv4Protocol: ipt},
		map[corev1.IPFamily]utils.IPSetHandler{corev1.IPv4Protocol: ipset})
	if err != nil {
		return fmt.Errorf("kube-router network policy controller: %w", err)
	}
	if _, err := pods.AddEventHandler(npc.PodEventHandler); err != nil {
		return err
	}
	if _, err := namespaces.AddEventHandler(npc.NamespaceEventHandler); err != nil {
		return err
	}
	if _, err := policies.AddEventHandler(npc.NetworkPolicyEventHandler); err != nil {
		return err
	}
	wg.Add(1)
	logf("network policy: kube-router %s network policy controller (%s) on node %s", krversion.Version, runtime.Version(), c.node)
	go npc.Run(health, stop, &wg)
	return nil
}

// metricsHeartbeat stands for kube-router's metrics controller, whose HTTP server is not
// run (its metrics are in the components' registry): it records the build info and
// beats every 3 s, so the health controller sees it alive.
func metricsHeartbeat(health chan<- *healthcheck.ControllerHeartbeat, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	metrics.BuildInfo.WithLabelValues(runtime.Version(), krversion.Version).Set(1)
	metrics.DefaultRegisterer.MustRegister(metrics.BuildInfo)
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		healthcheck.SendHeartBeat(health, "MC")
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func nodeInternalIP(node *corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}
