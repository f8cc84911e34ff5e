package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// Kube runs kubectl against the configured cluster.
type Kube struct {
	Config
	// Poll is how often WaitRollouts looks at the workloads (0: rolloutPoll).
	Poll time.Duration
	// Out receives WaitRollouts' progress lines (nil: standard error).
	Out io.Writer
}

func (k *Kube) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = os.Environ()
	if k.Kubeconfig != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+k.Kubeconfig)
	}
	cmd.Dir = k.Root
	return cmd
}

// Run runs kubectl with its output on the terminal.
func (k *Kube) Run(ctx context.Context, args ...string) error {
	cmd := k.command(ctx, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Output runs kubectl and returns its standard output.
func (k *Kube) Output(ctx context.Context, args ...string) (string, error) {
	return k.OutputStdin(ctx, nil, args...)
}

// OutputStdin runs kubectl with stdin and returns its standard output.
func (k *Kube) OutputStdin(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := k.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// JSON runs kubectl ... -o json and decodes the answer into v.
func (k *Kube) JSON(ctx context.Context, v any, args ...string) error {
	out, err := k.Output(ctx, append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), v)
}

// Node is what deploy needs of a node.
type Node struct {
	Name, InternalIP, OS, Arch, Variant string
	Labels                              map[string]string
}

// Nodes lists the cluster's nodes.
func (k *Kube) Nodes(ctx context.Context) ([]Node, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
			Status struct {
				Addresses []struct{ Type, Address string } `json:"addresses"`
				NodeInfo  struct {
					OS   string `json:"operatingSystem"`
					Arch string `json:"architecture"`
				} `json:"nodeInfo"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := k.JSON(ctx, &list, "get", "nodes"); err != nil {
		return nil, err
	}
	var nodes []Node
	for _, it := range list.Items {
		n := Node{Name: it.Metadata.Name, OS: it.Status.NodeInfo.OS, Arch: it.Status.NodeInfo.Arch, Labels: it.Metadata.Labels}
		if n.Arch == "arm" {
			// Kubernetes does not report the ARM version; K3s on a Raspberry Pi 2/3 in
			// 32-bit mode is v7, the common case.
			n.Variant = "v7"
		}
		for _, a := range it.Status.Addresses {
			if a.Type == "InternalIP" && n.InternalIP == "" {
				n.InternalIP = a.Address
			}
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("the cluster has no nodes")
	}
	return nodes, nil
}

// Platforms are the distinct os/arch[/variant] of the nodes, comma-separated.
func Platforms(nodes []Node) string {
	var ps []string
	seen := map[string]bool{}
	for _, n := range nodes {
		p := n.OS + "/" + n.Arch
		if n.Variant != "" {
			p += "/" + n.Variant
		}
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	return strings.Join(ps, ",")
}

// WorkloadKind returns "deployment" or "statefulset" for a workload name.
func (k *Kube) WorkloadKind(ctx context.Context, name string) (string, error) {
	for _, kind := range []string{"deployment", "statefulset"} {
		if _, err := k.Output(ctx, "-n", Namespace, "get", kind, name, "-o", "name"); err == nil {
			return kind, nil
		}
	}
	return "", fmt.Errorf("no Deployment or StatefulSet %q in namespace %s (workloads: %s)", name, Namespace, strings.Join(Workloads, ", "))
}

// explain prints what a workload's pods are waiting for.
func (k *Kube) explain(ctx context.Context, name string) {
	out, _ := k.Output(ctx, "-n", Namespace, "get", "pods", "-l", "app.kubernetes.io/name="+name, "-o", "wide")
	fmt.Fprint(os.Stderr, out)
	out, _ = k.Output(ctx, "-n", Namespace, "get", "events", "--sort-by=.lastTimestamp", "--field-selector", "type=Warning")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	fmt.Fprintln(os.Stderr, strings.Join(lines, "\n"))
}

var forwardLine = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// PortForward starts kubectl port-forward to target (e.g. svc/dashboard) on a local
// port (0: any free one) and returns the local port and a stop function.
func (k *Kube) PortForward(ctx context.Context, target string, localPort, remotePort int) (int, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := k.command(ctx, "-n", Namespace, "port-forward", "--address", "127.0.0.1", target, fmt.Sprintf("%d:%d", localPort, remotePort))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return 0, nil, err
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		cancel()
		return 0, nil, err
	}
	stop := func() { cancel(); _ = cmd.Wait() }
	port := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwardLine.FindStringSubmatch(sc.Text()); m != nil {
				var p int
				fmt.Sscan(m[1], &p)
				select {
				case port <- p:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case p := <-port:
		return p, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return 0, nil, fmt.Errorf("kubectl port-forward %s: no port after 30s: %s", target, strings.TrimSpace(errb.String()))
	}
}
