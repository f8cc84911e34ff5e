package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func logf(format string, args ...any) {
	klog.InfoDepth(1, "k3s-server: "+fmt.Sprintf(format, args...))
}

// component is one upstream command run in this process.
type component struct {
	name string
	cmd  *cobra.Command
	args []string
}

type exited struct {
	name string
	err  error
}

func runServer(argv []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "state directory (K3s: /var/lib/rancher/k3s); required")
	argsDir := fs.String("args-dir", "", "component flag files, one flag a line (default DATA-DIR/server/args)")
	kubeconfig := fs.String("kubeconfig", "", "admin kubeconfig for the readiness check and the deploy controller (default DATA-DIR/server/cred/admin.kubeconfig)")
	grace := fs.Duration("shutdown-grace", 5*time.Second, "how long the components get to stop after SIGTERM")
	interval := fs.Duration("manifests-interval", 5*time.Second, "how often the manifests folder is checked for changes")
	if err := fs.Parse(argv); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "k3s-server server: --data-dir is required")
		return 2
	}
	if *argsDir == "" {
		*argsDir = filepath.Join(*dataDir, "server", "args")
	}
	if *kubeconfig == "" {
		*kubeconfig = filepath.Join(*dataDir, "server", "cred", "admin.kubeconfig")
	}

	// Every component applies its logging options; they are the same (--v), and the
	// second application must not be an error.
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	logs.InitLogs()
	defer logs.FlushLogs()
	logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})

	// Our own context for what we start (kine, the deploy controller); the components
	// stop through the shared signal context of the patched k8s.io/apiserver.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Feature gates are process-global: the controller-manager's command is built first,
	// or a later default override of WatchListClient fails.
	var comps []*component
	for _, c := range []struct {
		name string
		new  func() *cobra.Command
	}{
		{"kube-controller-manager", controllermanager.NewControllerManagerCommand},
		{"kube-apiserver", apiserver.NewAPIServerCommand},
		{"kube-scheduler", func() *cobra.Command { return scheduler.NewSchedulerCommand() }},
		{"kubelet", func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) }},
		{"kube-proxy", proxy.NewProxyCommand},
	} {
		args, err := readArgs(filepath.Join(*argsDir, c.name))
		if err != nil {
			logf("%v", err)
			return 1
		}
		comps = append(comps, &component{name: c.name, cmd: c.new(), args: args})
	}
	byName := map[string]*component{}
	for _, c := range comps {
		byName[c.name] = c
	}

	t0 := time.Now()
	etcd, err := startKine(ctx, *dataDir)
	if err != nil {
		logf("%v", err)
		return 1
	}
	logf("kine (SQLite %s) serving the etcd API at %s after %s", filepath.Join(*dataDir, "server", "db", "state.db"), etcd, since(t0))

	exits := make(chan exited, len(comps)+1)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	api := byName["kube-apiserver"]
	api.args = append(api.args, "--etcd-servers="+etcd)
	api.start(exits)
	if !waitReady(ctx, *kubeconfig, exits, sigs) {
		return 1
	}
	logf("kube-apiserver ready after %s", since(t0))
	for _, n := range []string{"kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"} {
		byName[n].start(exits)
	}
	go deployManifests(ctx, filepath.Join(*dataDir, "server", "manifests"), *kubeconfig, *interval)
	go func() {
		if err := startControllers(ctx, *kubeconfig, byName); err != nil {
			exits <- exited{"k3s controllers", err}
		}
	}()

	select {
	case e := <-exits:
		// As K3s: any component that stops ends the server (it is restarted as a whole).
		logf("%s exited: %v", e.name, e.err)
		return 1
	case s := <-sigs:
		logf("%s: stopping (up to %s)", s, *grace)
		cancel()
		// kube-apiserver, the scheduler and kubelet stop on the shared signal context;
		// the controller-manager and kube-proxy do not stop on their own.
		deadline := time.After(*grace)
		for {
			select {
			case e := <-exits:
				logf("%s stopped (%v)", e.name, e.err)
				if e.name == "kube-apiserver" {
					return 0
				}
			case <-deadline:
				return 0
			}
		}
	}
}

// start executes the component's command in a goroutine, as component-base's cli.Run
// would (flag name normalisation, logging set-up), and reports its end on exits.
func (c *component) start(exits chan<- exited) {
	cmd := c.cmd
	cmd.SetArgs(c.args)
	cmd.SetGlobalNormalizationFunc(cliflag.WordSepNormalizeFunc)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	logs.AddFlags(cmd.PersistentFlags())
	logf("starting %s", c.name)
	go func() {
		err := cmd.Execute()
		if err == nil {
			err = errors.New("returned")
		}
		exits <- exited{c.name, err}
	}()
}

// readArgs reads one flag a line; blank lines and lines starting with # are skipped.
func readArgs(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	defer f.Close()
	var args []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			args = append(args, line)
		}
	}
	return args, sc.Err()
}

// waitReady polls kube-apiserver's /readyz until it answers ok; false when the
// apiserver exits or a signal comes first.
func waitReady(ctx context.Context, kubeconfig string, exits <-chan exited, sigs <-chan os.Signal) bool {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		logf("admin kubeconfig: %v", err)
		return false
	}
	cfg.Timeout = 2 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		logf("admin kubeconfig: %v", err)
		return false
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e := <-exits:
			logf("%s exited before it was ready: %v", e.name, e.err)
			return false
		case s := <-sigs:
			logf("%s before kube-apiserver was ready", s)
			return false
		case <-tick.C:
			body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			if err == nil && string(body) == "ok" {
				return true
			}
		}
	}
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// startControllers starts what K3s runs beside the components: its ServiceLB (here
// servicelb.go) and kube-router's network policy controller. Their settings are the
// components' own flags: the node's name from kubelet's, the Service ranges from
// kube-apiserver's.
func startControllers(ctx context.Context, kubeconfig string, byName map[string]*component) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	np := netpolConfig{
		node:          flagValue(byName["kubelet"].args, "hostname-override"),
		serviceCIDR:   flagValue(byName["kube-apiserver"].args, "service-cluster-ip-range"),
		nodePortRange: flagValue(byName["kube-apiserver"].args, "service-node-port-range"),
	}
	if np.node == "" {
		if np.node, err = os.Hostname(); err != nil {
			return err
		}
		np.node = strings.ToLower(np.node)
	}
	if np.serviceCIDR == "" {
		np.serviceCIDR = "10.0.0.0/24" // kube-apiserver's default
	}
	if np.nodePortRange == "" {
		np.nodePortRange = "30000-32767"
	}
	if err := runServiceLB(ctx, cs, np.node); err != nil {
		return fmt.Errorf("servicelb: %w", err)
	}
	if err := runNetworkPolicy(ctx, cs, np); err != nil {
		return fmt.Errorf("network policy: %w", err)
	}
	return nil
}

// flagValue is the value of the last --NAME=VALUE among a component's flags.
func flagValue(args []string, name string) string {
	v := ""
	for _, a := range args {
		if s, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			v = s
		}
	}
	return v
}
