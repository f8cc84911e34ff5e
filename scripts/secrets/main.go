// Command secrets generates every secret edgeflow's cluster needs, one file
// per Secret key, in a folder per Secret:
//
//	go run ./scripts/secrets -out .build/secrets [-san mqtt.example.com]... [-dashboard-san dash.example.com]... [-influx18] [-leaf-site greenhouse-north]...
//
//	DIR/edgeflow-nats/{ingest,processor,notifier,dashboard}    NATS passwords
//	DIR/edgeflow-nats/route                                    the NATS cluster's route password
//	DIR/edgeflow-mqtt/{passwd,ingest-password,device-password} Mosquitto users
//	DIR/edgeflow-mqtt-tls/{ca.crt,tls.crt,tls.key}             broker (and NATS) TLS
//	DIR/edgeflow-influxdb/{admin-password,token}               InfluxDB's admin (only InfluxDB and task deploy use it)
//	DIR/edgeflow-influxdb/{processor,dashboard}-{password,token} the services' own (1.8; 2.x tokens from task deploy)
//	DIR/edgeflow-dashboard/token                               dashboard access
//	DIR/edgeflow-dashboard-tls/{tls.crt,tls.key}               the dashboard's HTTPS (Traefik; a kubernetes.io/tls Secret)
//	DIR/edgeflow-nats-route-tls/{ca.crt,tls.crt,tls.key}       the NATS cluster's routes (mutual TLS between the servers)
//	DIR/edgeflow-nats-leaf/users.conf                          a hub's leaf node users, one per site (bcrypt; overlays/hub)
//	DIR/uplink/<site>/{user,password,ca.crt}                   a site's login to the hub: copy to the site's
//	                                                           DIR/edgeflow-nats-uplink/ (components/uplink)
//	DIR/ca/ca.key                                              the CA's key: keep it here, never in a Secret
//
// It is idempotent: files that exist are kept, missing ones are made, and
// what derives from others (the password file, the server certificates, the
// 1.8 <user>-token files) is remade only when it no longer matches them. Delete a
// file to rotate it (docs/security.md). Every file is 0600, every folder
// 0700; values are random (crypto/rand, URL-safe) and never printed.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// sanList is a repeatable -san flag.
type sanList []string

func (s *sanList) String() string { return strings.Join(*s, ",") }
func (s *sanList) Set(v string) error {
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			*s = append(*s, n)
		}
	}
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("secrets", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts Options
	var sans, dashSANs, leafSites sanList
	fs.StringVar(&opts.Dir, "out", "", "directory to write the secrets to (required; e.g. .build/secrets, which git ignores)")
	fs.Var(&sans, "san", "extra name or IP address of the broker's certificate (repeatable, or comma-separated), e.g. the address devices use")
	fs.Var(&dashSANs, "dashboard-san", "extra name or IP address of the dashboard's HTTPS certificate (repeatable, or comma-separated), e.g. DASHBOARD_HOST")
	fs.Var(&leafSites, "leaf-site", "a hub (overlays/hub): make a leaf node user for this site, its EDGEFLOW_SITE_NAME (repeatable, or comma-separated); its credentials for the site go to DIR/uplink/<site>/")
	fs.BoolVar(&opts.Influx18, "influx18", false, "InfluxDB 1.8: <user>-token is <user>:<user>-password for the processor and dashboard users (2.x: task deploy writes the tokens of their authorizations)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./scripts/secrets -out DIR [-san NAME]... [-dashboard-san NAME]... [-influx18] [-leaf-site SITE]...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if opts.Dir == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	opts.SANs = sans
	opts.DashboardSANs = dashSANs
	opts.LeafSites = leafSites
	res, err := Generate(opts)
	if err != nil {
		fmt.Fprintln(stderr, "secrets:", err)
		return 1
	}
	for _, f := range res.Files {
		fmt.Fprintf(stdout, "%-8s %s\n", f.Action, f.Path)
	}
	return 0
}
