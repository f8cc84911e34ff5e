// Command loadgen publishes synthetic sensor messages to an MQTT broker at a
// controlled rate and reports exactly what the broker acknowledged, per
// device. See README.md.
//
//	go run ./scripts/loadgen -count 100000 -rate 0 -report /tmp/load.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// envPrefix prefixes the environment variable of every flag:
// -seq-start is EDGEFLOW_LOADGEN_SEQ_START. A flag given on the command line wins.
const envPrefix = "EDGEFLOW_LOADGEN_"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // the run could not start, or some messages were not acknowledged
	exitUsage   = 2
	exitConnect = 3 // a connection to the broker failed at start: nothing was published
)

func run(args []string, stdout, stderr io.Writer) int {
	cfg := DefaultConfig()
	var reportPath string
	var qos uint
	every := DefaultProgress
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Broker, "broker", cfg.Broker, "MQTT broker URL")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "number of devices (dev-0000, dev-0001, ...)")
	fs.IntVar(&cfg.Sites, "sites", cfg.Sites, "number of sites (site-0, ...); device i is at site i mod sites")
	fs.StringVar(&cfg.SitePrefix, "site-prefix", cfg.SitePrefix, "site name prefix (sites are prefix-0, prefix-1, ...)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "total PUBLISH packets per second, duplicates included (0 = as fast as possible)")
	fs.Int64Var(&cfg.Count, "count", 0, "total distinct messages (0 = no limit; -count or -duration is required)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0 = no limit); the run stops at whichever of -count and -duration comes first")
	fs.IntVar(&cfg.Metrics, "metrics", cfg.Metrics, "numeric fields per message: temperature, humidity, pressure, m3, ...")
	fs.UintVar(&qos, "qos", uint(cfg.QoS), "MQTT QoS (0, 1 or 2)")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "MQTT connections, each owning a disjoint set of devices")
	fs.Float64Var(&cfg.Duplicates, "duplicates", 0, "fraction of messages published twice with the same payload (simulated redelivery)")
	fs.StringVar(&cfg.ClientPrefix, "client-prefix", cfg.ClientPrefix, "MQTT client id prefix (ids are prefix-0, prefix-1, ...)")
	fs.StringVar(&cfg.Username, "username", "", "MQTT username (optional)")
	fs.StringVar(&cfg.Password, "password", "", "MQTT password (optional)")
	fs.StringVar(&cfg.CAFile, "cafile", "", "CA certificate (PEM) that verifies a TLS broker (ssl://host:8883); default: the system's roots")
	fs.StringVar(&cfg.CertFile, "cert", "", "client certificate (PEM) for brokers that verify clients (with -key)")
	fs.StringVar(&cfg.KeyFile, "key", "", "the client certificate's private key (PEM)")
	fs.StringVar(&cfg.ServerName, "server-name", "", "name the broker's certificate must carry, when it is not the -broker host")
	fs.Uint64Var(&cfg.SeqStart, "seq-start", cfg.SeqStart, "first seq of every device")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight", cfg.MaxInFlight, "most unacknowledged messages per connection")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", cfg.DrainTimeout, "how long to wait for the last acknowledgements; what is left counts as failed")
	fs.StringVar(&reportPath, "report", "", "write the report as JSON to this file")
	fs.DurationVar(&every, "progress", every, "write a rate line (sent, acked, failed, msgs/s, time left, elapsed) to stderr this often; 0 = none")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: loadgen [flags]\n\nEvery flag can also be set as %s<FLAG> (upper case, - as _); flags win.\n\n", envPrefix)
		fs.PrintDefaults()
	}

	if err := applyEnv(fs); err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if qos > 2 {
		fmt.Fprintf(stderr, "loadgen: -qos %d: must be 0, 1 or 2\n", qos)
		return exitUsage
	}
	cfg.QoS = byte(qos)

	log := slog.New(slog.NewTextHandler(stderr, nil))
	gen, err := New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: invalid configuration:\n%v\n", err)
		return exitUsage
	}

	gen.SetProgress(Progress{W: stderr, Every: every})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// The first signal stops publishing and drains; a second one kills.
		stop()
	}()

	rep, err := gen.Run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		if errors.Is(err, ErrConnect) {
			return exitConnect
		}
		return exitFailed
	}
	if err := rep.WriteSummary(stdout); err != nil {
		fmt.Fprintln(stderr, "loadgen: write summary:", err)
	}
	if reportPath != "" {
		if err := writeReport(reportPath, rep); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return exitFailed
		}
	}
	if rep.Totals.Failed > 0 || rep.Totals.DuplicatesFailed > 0 {
		return exitFailed
	}
	return exitOK
}

// applyEnv sets every flag that has an EDGEFLOW_LOADGEN_* variable, before
// the command line is parsed, so the command line wins.
func applyEnv(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func writeReport(path string, r Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
