package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Faults in what devices send, injected beside the process faults:
//   - a reading dated FutureSkew ahead among a device's good ones: it must not
//     move the device's time, or the device's next readings are late;
//   - a burst of Burst devices never seen before, one reading each: the
//     processors' state grows by that many devices at once, and every
//     reading must still count exactly.
const (
	KindFutureReading = "future-reading"
	KindDeviceBurst   = "device-burst"
	// inputTarget names what input faults are injected into.
	inputTarget = "devices"
	// futureMetric is the future-dated reading's only field: not one of the
	// load's metrics, so the verdict's counts stay the load's, while the
	// reading goes through the whole pipeline.
	futureMetric = "skewed"
	// burstSitePrefix keeps the burst's devices apart from the load's.
	burstSitePrefix = "burst"
)

// inputFaults injects the future-dated reading a third of the way through
// the time left for faults and the device burst at two thirds, and returns
// them as faults with the burst's load report (zero when none ran).
func (r *runner) inputFaults(ctx context.Context, loadStart time.Time) ([]Fault, loadReport) {
	cfg := r.cfg
	span := cfg.Duration - cfg.Warmup - cfg.Quiet
	var faults []Fault
	var burst loadReport
	if cfg.FutureSkew > 0 && sleepUntil(ctx, loadStart.Add(cfg.Warmup+span/3)) {
		f := r.inputFault(KindFutureReading, loadStart)
		if err := r.whileBrokerUp(ctx, func() error { return r.publishFuture(ctx) }); err != nil {
			f.Err = err.Error()
		}
		f.ReadyAfter = time.Since(f.injected)
		r.logf("input fault: a reading of site-0/dev-0000 dated %s ahead, acknowledged after %s%s",
			cfg.FutureSkew, f.ReadyAfter.Round(time.Millisecond), errSuffix(f.Err))
		faults = append(faults, f)
	}
	if cfg.Burst > 0 && sleepUntil(ctx, loadStart.Add(cfg.Warmup+2*span/3)) {
		f := r.inputFault(KindDeviceBurst, loadStart)
		err := r.whileBrokerUp(ctx, func() error {
			var err error
			burst, err = r.publishBurst(ctx)
			return err
		})
		if err != nil {
			f.Err = err.Error()
		}
		f.ReadyAfter = time.Since(f.injected)
		r.logf("input fault: %d new devices, one reading each: %d acknowledged after %s%s",
			cfg.Burst, burst.Totals.Acked, f.ReadyAfter.Round(time.Millisecond), errSuffix(f.Err))
		faults = append(faults, f)
	}
	return faults, burst
}

// errBrokerAway is a publisher that could not reach the broker at start,
// having published nothing.
var errBrokerAway = errors.New("broker unreachable at start")

// whileBrokerUp runs publish, which may meet the broker down (a process
// fault of the same run): after a failure it waits until the broker is
// ready again and tries again, three times at most. publish must be safe to
// repeat after the error it returns: the load generator publishes nothing
// when it cannot connect (errBrokerAway), and a repeated mosquitto_pub of
// the future reading is a duplicate JetStream drops.
func (r *runner) whileBrokerUp(ctx context.Context, publish func() error) error {
	var errs []error
	for attempt := 1; attempt <= 3; attempt++ {
		err := publish()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt, err))
		r.logf("input fault: %v; waiting for the broker", err)
		if werr := waitReady(ctx, r.stack.broker, serviceReadyTimeout); werr != nil {
			return errors.Join(append(errs, werr)...)
		}
	}
	return errors.Join(errs...)
}

func (r *runner) inputFault(kind string, loadStart time.Time) Fault {
	now := time.Now()
	return Fault{Target: inputTarget, Kind: kind, Time: now.UTC(), At: now.Sub(loadStart), injected: now}
}

// publishFuture publishes, QoS 1, one reading of the load's first device
// dated FutureSkew ahead, and returns once the broker acknowledged it.
func (r *runner) publishFuture(ctx context.Context) error {
	u, err := url.Parse(r.stack.mqtt.URL)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{"ts": time.Now().Add(r.cfg.FutureSkew).UnixMilli(), futureMetric: 1})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(pctx, "mosquitto_pub", "-h", u.Hostname(), "-p", u.Port(), "-q", "1",
		"-i", "chaos-future", "-t", "sensors/site-0/dev-0000", "-m", string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mosquitto_pub: %w: %s", err, firstLine(string(out)))
	}
	return nil
}

// publishBurst runs the load generator once over Burst new devices, one
// reading each, as fast as the broker acknowledges.
func (r *runner) publishBurst(ctx context.Context) (loadReport, error) {
	n := strconv.Itoa(r.cfg.Burst)
	return r.runLoadgen(ctx, "burst", "-devices", n, "-count", n, "-sites", "1", "-site-prefix", burstSitePrefix,
		"-rate", "0", "-client-prefix", "chaos-burst", "-drain-timeout", "2m")
}

// runLoadgen runs the load generator with args, its log and report in a
// folder named name, and returns its report.
func (r *runner) runLoadgen(ctx context.Context, name string, args ...string) (loadReport, error) {
	dir := filepath.Join(r.cfg.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return loadReport{}, err
	}
	report := filepath.Join(dir, "report.json")
	args = append([]string{"-broker", r.stack.mqtt.URL, "-report", report}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(r.cfg.Bin, "loadgen"), args...)
	out, err := os.Create(filepath.Join(dir, "loadgen.log"))
	if err != nil {
		return loadReport{}, err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 3 {
		return loadReport{}, fmt.Errorf("loadgen: %w (log %s)", errBrokerAway, out.Name())
	}
	// Exit status 1 is "some messages not acknowledged": the report says
	// which, and the verdict judges it.
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		return loadReport{}, fmt.Errorf("loadgen %v: %w (log %s)", args, err, out.Name())
	}
	data, rerr := os.ReadFile(report)
	if rerr != nil {
		return loadReport{}, fmt.Errorf("loadgen report: %w (loadgen: %v; log %s)", rerr, err, out.Name())
	}
	var rep loadReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return loadReport{}, fmt.Errorf("loadgen report %s: %w", report, err)
	}
	return rep, nil
}

// add merges another load generator's report into rep: the verdict holds
// the pipeline to everything the broker acknowledged.
func (rep *loadReport) add(o loadReport) {
	rep.Totals.Attempted += o.Totals.Attempted
	rep.Totals.Acked += o.Totals.Acked
	rep.Totals.Failed += o.Totals.Failed
	rep.Devices = append(rep.Devices, o.Devices...)
}
