package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// serviceLBName is the controller's name in Events and logs.
const serviceLBName = "k3s-server-servicelb"

// serviceLB stands for K3s's ServiceLB (pkg/cloudprovider/servicelb.go) on this one
// node: every Service of type LoadBalancer without a loadBalancerClass gets the node's
// InternalIP as its load balancer ingress, and kube-proxy (iptables mode) then forwards
// NODE-IP:PORT to the Service's endpoints with its load-balancer rules. K3s instead runs
// a DaemonSet of klipper-lb pods per Service whose hostPorts forward the node's ports.
// As with those hostPorts, a port and protocol is held by one Service at a time: a
// Service that asks for one already held stays pending (no ingress) with a warning Event,
// and gets its address once the holder lets the port go. The holder is the Service that
// has the address already, else the oldest.
type serviceLB struct {
	cs       kubernetes.Interface
	node     string
	services corelisters.ServiceLister
	nodes    corelisters.NodeLister
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	warned   map[string]string // Service key -> the pending message last sent as an Event
}

// syncKey is the queue's only key: the assignment of ports is global, so every change
// to a Service or to the node recomputes it for all Services (a node has few).
const syncKey = "all"

func runServiceLB(ctx context.Context, cs kubernetes.Interface, node string) error {
	factory := informers.NewSharedInformerFactory(cs, 0)
	svcInformer := factory.Core().V1().Services()
	nodeInformer := factory.Core().V1().Nodes()
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	lb := &serviceLB{
		cs:       cs,
		node:     node,
		services: svcInformer.Lister(),
		nodes:    nodeInformer.Lister(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: serviceLBName}),
		recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: serviceLBName}),
		warned:   map[string]string{},
	}
	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { lb.queue.Add(syncKey) },
		UpdateFunc: func(any, any) { lb.queue.Add(syncKey) },
		DeleteFunc: func(any) { lb.queue.Add(syncKey) },
	}
	if _, err := svcInformer.Informer().AddEventHandler(enqueue); err != nil {
		return err
	}
	if _, err := nodeInformer.Informer().AddEventHandler(enqueue); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("servicelb: %v cache not synced", typ)
		}
	}
	go func() {
		<-ctx.Done()
		lb.queue.ShutDown()
		broadcaster.Shutdown()
	}()
	go lb.worker(ctx)
	logf("servicelb: LoadBalancer Services get node %s's InternalIP", node)
	return nil
}

func (lb *serviceLB) worker(ctx context.Context) {
	for {
		key, quit := lb.queue.Get()
		if quit {
			return
		}
		if err := lb.sync(ctx); err != nil {
			if !apierrors.IsConflict(err) {
				logf("servicelb: %v (retrying)", err)
			}
			lb.queue.AddRateLimited(key)
		} else {
			lb.queue.Forget(key)
		}
		lb.queue.Done(key)
	}
}

// portKey is a port as a hostPort would hold it: number and protocol.
type portKey struct {
	port     int32
	protocol corev1.Protocol
}

func (p portKey) String() string { return fmt.Sprintf("%d/%s", p.port, p.protocol) }

// sync gives each LoadBalancer Service its status: the node's address when its ports
// are free, none when another Service holds one of them. Services that are no longer of
// type LoadBalancer lose the address (the API server clears it on the type change too).
func (lb *serviceLB) sync(ctx context.Context) error {
	node, err := lb.nodes.Get(lb.node)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("node %s not registered yet", lb.node)
	} else if err != nil {
		return err
	}
	ip := nodeInternalIP(node)
	if ip == "" {
		return fmt.Errorf("node %s has no InternalIP yet", lb.node)
	}
	all, err := lb.services.List(labels.Everything())
	if err != nil {
		return err
	}
	var candidates []*corev1.Service
	var errs []string
	for _, svc := range all {
		switch {
		case svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil:
			candidates = append(candidates, svc)
		case svc.Spec.Type != corev1.ServiceTypeLoadBalancer && holds(svc, ip):
			if err := lb.setStatus(ctx, svc, nil, ""); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	// Holders first, then the oldest, then by name: a port stays with its Service.
	sort.Slice(candidates, func(i, j int) bool {
		a, b := candidates[i], candidates[j]
		if ha, hb := holds(a, ip), holds(b, ip); ha != hb {
			return ha
		}
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return key(a) < key(b)
	})
	held := map[portKey]string{}
	for _, svc := range candidates {
		var taken []string
		for _, p := range svc.Spec.Ports {
			if by, ok := held[portKey{p.Port, p.Protocol}]; ok {
				taken = append(taken, fmt.Sprintf("%s (held by %s)", portKey{p.Port, p.Protocol}, by))
			}
		}
		var ingress []corev1.LoadBalancerIngress
		pending := ""
		if len(taken) == 0 {
			for _, p := range svc.Spec.Ports {
				held[portKey{p.Port, p.Protocol}] = key(svc)
			}
			vip := corev1.LoadBalancerIPModeVIP
			ingress = []corev1.LoadBalancerIngress{{IP: ip, IPMode: &vip}}
		} else {
			pending = fmt.Sprintf("no port free on node %s for this LoadBalancer: %s; pending until it is free",
				lb.node, strings.Join(taken, ", "))
		}
		if err := lb.setStatus(ctx, svc, ingress, pending); err != nil {
			errs = append(errs, err.Error())
		}
	}
	// Forget the warnings of Services that are gone.
	for k := range lb.warned {
		ns, name, _ := strings.Cut(k, "/")
		if _, err := lb.services.Services(ns).Get(name); apierrors.IsNotFound(err) {
			delete(lb.warned, k)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// setStatus writes the Service's load balancer ingress when it differs, with an Event as
// K3s's ServiceLB sends them; a pending Service gets its warning once per message.
func (lb *serviceLB) setStatus(ctx context.Context, svc *corev1.Service, ingress []corev1.LoadBalancerIngress, pending string) error {
	k := key(svc)
	if pending != "" && lb.warned[k] != pending {
		lb.recorder.Event(svc, corev1.EventTypeWarning, "UnAvailableLoadBalancer", pending)
		lb.warned[k] = pending
	} else if pending == "" {
		delete(lb.warned, k)
	}
	if apiequality.Semantic.DeepEqual(svc.Status.LoadBalancer.Ingress, ingress) ||
		(len(ingress) == 0 && len(svc.Status.LoadBalancer.Ingress) == 0) {
		return nil
	}
	updated := svc.DeepCopy()
	updated.Status.LoadBalancer = corev1.LoadBalancerStatus{Ingress: ingress}
	if _, err := lb.cs.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("service %s: %w", k, err)
	}
	old := ingressIPs(svc.Status.LoadBalancer.Ingress)
	switch {
	case len(ingress) > 0:
		lb.recorder.Eventf(svc, corev1.EventTypeNormal, "UpdatedLoadBalancer", "Updated LoadBalancer with new IPs: %v -> %v", old, ingressIPs(ingress))
		logf("servicelb: %s -> %s", k, ip0(ingress))
	case pending == "":
		logf("servicelb: %s is no longer a LoadBalancer: address %v removed", k, old)
	default:
		logf("servicelb: %s pending: %s", k, pending)
	}
	return nil
}

// holds says whether the Service has the node's address as its ingress.
func holds(svc *corev1.Service, ip string) bool {
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP == ip {
			return true
		}
	}
	return false
}

func ingressIPs(in []corev1.LoadBalancerIngress) []string {
	ips := []string{}
	for _, i := range in {
		ips = append(ips, i.IP)
	}
	return ips
}

func ip0(in []corev1.LoadBalancerIngress) string { return in[0].IP }

func key(svc *corev1.Service) string { return svc.Namespace + "/" + svc.Name }
