package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/devenv/influxadmin"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/scripts/internal/launcher"
)

// siteStride is what site i (from 1) adds to every port of the single
// stack: the hub keeps the usual ports, so its dashboard is the one at
// EDGEFLOW_DEV_DASHBOARD_PORT.
const siteStride = 100

// maxSites keeps every site's ports below the next stride's.
const maxSites = 9

// leafUser is the login every site's NATS uses at the hub's leaf node port.
const leafUser = "site"

// runSites is `task up:sites`: a hub and one stack per site on this machine
// (docs/operations.md#hub). Each site is the single stack of `task up` with
// its own NATS (JetStream domain = the site's name, a leaf node of the
// hub's), InfluxDB, services and simulated sensors, whose site names start
// with the site's ("north-lab"). The hub runs NATS with the leaf node port,
// InfluxDB, the processor in hub mode (EDGEFLOW_HUB_SITES: it sources every
// site's windows and alerts and writes the windows to the hub's InfluxDB)
// and the dashboard, which shows every site.
func runSites(ctx context.Context, log *slog.Logger, cfg Config, root, data, bin, rules string, plan influxadmin.Plan) error {
	if len(cfg.Sites) > maxSites {
		return fmt.Errorf("EDGEFLOW_DEV_SITES: %d sites; at most %d", len(cfg.Sites), maxSites)
	}
	password, err := secret()
	if err != nil {
		return err
	}
	hubDir := filepath.Join(data, "sites", "hub")
	hub := &launcher.Launcher{
		Dir: filepath.Join(hubDir, "logs"), Bin: bin, Host: cfg.Host,
		NATS: &devenv.NATSOptions{Host: cfg.Host, Port: cfg.NATSPort, StoreDir: filepath.Join(hubDir, "nats"),
			ServerName: "edgeflow-hub", SyncInterval: cfg.SyncInterval, Domain: bus.HubDomain,
			Leaf: &devenv.NATSLeaf{Port: cfg.LeafPort, User: leafUser, Password: password}},
		Influx: &devenv.InfluxOptions{Dir: filepath.Join(hubDir, "influxdb"), Port: cfg.InfluxPort, Plan: &plan},
		Bucket: cfg.Bucket, RawBucket: cfg.RawBucket,
		Scrape:       []string{launcher.Processor},
		Overrides:    map[string][]string{launcher.Processor: {"EDGEFLOW_HUB_SITES=" + strings.Join(cfg.Sites, ",")}},
		ReadyTimeout: 60 * time.Second, StopTimeout: 30 * time.Second, Log: log,
	}
	stacks := []*launcher.Launcher{hub}
	var sims []*devenv.Process
	// Sites stop first (their simulations, then their services), the hub last.
	defer func() {
		for _, p := range sims {
			_ = p.Stop(context.Background())
			log.Info("stopped", "process", p.Name)
		}
		for i := len(stacks) - 1; i >= 0; i-- {
			_ = stacks[i].Stop(context.Background())
		}
	}()
	if err := os.MkdirAll(hub.Dir, 0o755); err != nil {
		return err
	}
	if err := hub.StartServers(ctx); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	for _, s := range []launcher.Service{
		{Kind: launcher.Processor, Name: "hub-processor", ID: "hub", Port: cfg.ProcessorPort},
		{Kind: launcher.Dashboard, Name: "hub-dashboard", Port: cfg.DashboardPort},
	} {
		if _, err := hub.Start(ctx, s); err != nil {
			return fmt.Errorf("hub: %w", err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nedgeflow hub and %d sites are running (data and logs in %s)\n\n", len(cfg.Sites), filepath.Join(data, "sites"))
	fmt.Fprintf(&b, "  hub dashboard  http://%s   <- every site, open in a browser\n", net(cfg.Host, cfg.DashboardPort))
	fmt.Fprintf(&b, "  hub            NATS %s (leaf nodes on %d), InfluxDB %s\n", hub.NATSURL, cfg.LeafPort, hub.InfluxURL)
	for i, site := range cfg.Sites {
		off := siteStride * (i + 1)
		siteDir := filepath.Join(data, "sites", site)
		siteRules, err := prefixRules(rules, filepath.Join(siteDir, "rules.yaml"), site+"-")
		if err != nil {
			return err
		}
		l := &launcher.Launcher{
			Dir: filepath.Join(siteDir, "logs"), Bin: bin, Host: cfg.Host,
			NATS: &devenv.NATSOptions{Host: cfg.Host, Port: cfg.NATSPort + off, MQTTPort: cfg.MQTTPort + off,
				StoreDir: filepath.Join(siteDir, "nats"), ServerName: "edgeflow-" + site, SyncInterval: cfg.SyncInterval,
				Domain: site,
				Leaf: &devenv.NATSLeaf{
					Remotes:           []string{"nats-leaf://" + leafUser + ":" + password + "@" + net(cfg.Host, cfg.LeafPort)},
					ReconnectInterval: time.Second, Deny: bus.SiteLocalSubjects}},
			MQTTURL: "tcp://" + net(cfg.Host, cfg.MQTTPort+off),
			Influx:  &devenv.InfluxOptions{Dir: filepath.Join(siteDir, "influxdb"), Port: cfg.InfluxPort + off, Plan: &plan},
			Bucket:  cfg.Bucket, RawBucket: cfg.RawBucket, Rules: siteRules,
			Env:          []string{"EDGEFLOW_SITE_NAME=" + site},
			Overrides:    map[string][]string{launcher.Ingest: {"EDGEFLOW_INGEST_SHARE_GROUP="}},
			ReadyTimeout: 60 * time.Second, StopTimeout: 30 * time.Second, Log: log,
		}
		stacks = append(stacks, l)
		if err := os.MkdirAll(l.Dir, 0o755); err != nil {
			return err
		}
		if err := l.StartServers(ctx); err != nil {
			return fmt.Errorf("site %s: %w", site, err)
		}
		for _, s := range []launcher.Service{
			{Kind: launcher.Ingest, Name: site + "-ingest", ID: "edgeflow-ingest-" + site, Port: cfg.IngestPort + off},
			{Kind: launcher.Processor, Name: site + "-processor", ID: site, Port: cfg.ProcessorPort + off},
			{Kind: launcher.Notifier, Name: site + "-notifier", ID: site, Port: cfg.NotifierPort + off},
			{Kind: launcher.Dashboard, Name: site + "-dashboard", Port: cfg.DashboardPort + off},
		} {
			if _, err := l.Start(ctx, s); err != nil {
				return fmt.Errorf("site %s: %w", site, err)
			}
		}
		if cfg.Sim == "on" {
			sim, err := devenv.StartProcess(ctx, devenv.ProcessOptions{
				Name: site + "-simulate-sensors", Bin: "bash", Args: []string{filepath.Join(root, "scripts", "simulate-sensors.sh")},
				Dir: l.Dir, Env: []string{"EDGEFLOW_MQTT_HOST=" + cfg.Host, "EDGEFLOW_MQTT_PORT=" + strconv.Itoa(cfg.MQTTPort+off),
					"EDGEFLOW_SIM_SITE_PREFIX=" + site + "-", "EDGEFLOW_SIM_CLIENT_PREFIX=sim-" + site},
			})
			if err != nil {
				return fmt.Errorf("site %s: %w", site, err)
			}
			sims = append(sims, sim)
		}
		fmt.Fprintf(&b, "  site %-9s dashboard http://%s, MQTT tcp://%s, NATS %s (domain %s), InfluxDB %s\n",
			site, net(cfg.Host, cfg.DashboardPort+off), net(cfg.Host, cfg.MQTTPort+off), l.NATSURL, site, l.InfluxURL)
	}
	b.WriteString("Windows and alerts leave each site for the hub over the leaf node link; a site keeps running without it.\n")
	b.WriteString("Ctrl-C stops everything.\n")
	fmt.Fprint(os.Stderr, b.String())

	<-ctx.Done()
	log.Info("stopping")
	return nil
}

// secret is a random password for the leaf node logins of one run.
func secret() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// prefixRules writes to dst the rules file src with prefix put before every
// rule's site selector, so that a site's notifier, whose simulated sites
// carry the site's name ("north-lab"), evaluates the repository's rules.
func prefixRules(src, dst, prefix string) (string, error) {
	in, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(in, &doc); err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	if len(doc.Content) == 1 {
		if rules := mapValue(doc.Content[0], "rules"); rules != nil {
			for _, r := range rules.Content {
				if site := mapValue(r, "site"); site != nil && site.Kind == yaml.ScalarNode && site.Value != "*" {
					site.Value = prefix + site.Value
				}
			}
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	return dst, os.WriteFile(dst, out.Bytes(), 0o644)
}

// mapValue is the value of key in the mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
