// k3s-server: the dev cluster's K3s layout (LAYOUT=k3s in ../env.sh). One process runs
// what K3s's server runs in one process: kine on SQLite as the datastore, kube-apiserver
// on kine's etcd API, then kube-controller-manager, kube-scheduler, kubelet and kube-proxy,
// and a deploy controller that applies the manifests folder. It is upstream Kubernetes
// assembled the way K3s assembles it, not K3s: no K3s patches, supervisor, agent tunnel,
// flannel or embedded containerd (containerd runs beside it).
//
// It is also kubectl (multi-call: argv[0] or the first argument), as K3s is.
//
//	k3s-server server --data-dir DIR     (DIR is what K3s calls /var/lib/rancher/k3s)
//	k3s-server kubectl ARGS...
//	k3s-server version                   (prints "Kubernetes vX.Y.Z")
//
// Under DIR it keeps what K3s keeps there: server/db/state.db (kine's SQLite file),
// server/kine.sock (kine's etcd API), server/manifests/ (applied at start and on change).
// Each component's flags come from server/args/<component>, one flag a line, written by
// ../up.sh; the server adds --etcd-servers for kube-apiserver.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/component-base/version"
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	name := filepath.Base(os.Args[0])
	if name != "kubectl" && name != "server" {
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, "usage: k3s-server {server|kubectl|version} [flags]")
			os.Exit(2)
		}
		name = os.Args[1]
		os.Args = os.Args[1:]
	}
	switch name {
	case "server":
		os.Exit(runServer(os.Args[1:]))
	case "version":
		fmt.Printf("Kubernetes %s\n", version.Get().GitVersion)
		os.Exit(0)
	case "kubectl":
		// As upstream's cmd/kubectl: errors are printed by kubectl's own handler.
		if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err)
		}
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q (server, kubectl, version)\n", name)
		os.Exit(2)
	}
}
