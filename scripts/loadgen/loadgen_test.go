package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testConfig(broker string) Config {
	cfg := DefaultConfig()
	cfg.Broker = broker
	cfg.DrainTimeout = 20 * time.Second
	return cfg
}

func runGenerator(t *testing.T, cfg Config) Report {
	t.Helper()
	gen, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rep, err := gen.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRunCountsExactly publishes with duplicates through a real broker and
// checks the report against what a raw subscriber received, message by message.
func TestRunCountsExactly(t *testing.T) {
	b := startMosquitto(t)
	cfg := testConfig(b.URL)
	cfg.Devices, cfg.Sites, cfg.Publishers = 10, 3, 3 // uneven on purpose
	cfg.Count = 2003                                  // not a multiple of Devices
	cfg.Rate = 0
	cfg.Duplicates = 0.1
	cfg.Metrics = 4
	cfg.SeqStart = 5
	sub := subscribe(t, b.URL, cfg)

	rep := runGenerator(t, cfg)

	// What the run must have done, recomputed from the pure functions.
	wantDups := map[string]int64{}
	var totalDups int64
	for d := range cfg.Devices {
		for k := range cfg.DeviceQuota(d) {
			if Duplicated(d, cfg.SeqStart+uint64(k), cfg.Duplicates) {
				wantDups[DeviceName(d)]++
				totalDups++
			}
		}
	}
	if frac := float64(totalDups) / float64(cfg.Count); frac < 0.07 || frac > 0.13 {
		t.Errorf("duplicated %.3f of the messages, want about %.2f", frac, cfg.Duplicates)
	}
	want := Totals{Attempted: 2003, Acked: 2003, DuplicatesSent: totalDups, DuplicatesAcked: totalDups}
	if rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	if rep.Latency.Samples != uint64(2003+totalDups) || rep.Latency.P50Ms <= 0 || rep.Latency.P99Ms < rep.Latency.P50Ms {
		t.Errorf("latency %+v", rep.Latency)
	}
	if len(rep.Devices) != cfg.Devices {
		t.Fatalf("%d devices in the report, want %d", len(rep.Devices), cfg.Devices)
	}
	for d, dr := range rep.Devices {
		quota := cfg.DeviceQuota(d)
		if dr.Device != DeviceName(d) || dr.Site != cfg.SiteName(d) {
			t.Errorf("device %d reported as %s at %s", d, dr.Device, dr.Site)
		}
		if dr.Attempted != quota || dr.Acked != quota || dr.Failed != 0 || dr.Gaps != 0 ||
			dr.FirstSeq == nil || *dr.FirstSeq != 5 || dr.LastSeq == nil || *dr.LastSeq != 5+uint64(quota)-1 ||
			dr.DuplicatesSent != wantDups[dr.Device] || dr.DuplicatesAcked != wantDups[dr.Device] {
			t.Errorf("device %+v (first %v last %v), want %d acked from seq 5 and %d duplicates",
				dr, seqText(dr.FirstSeq), seqText(dr.LastSeq), quota, wantDups[dr.Device])
		}
	}

	sub.waitFor(int(2003 + totalDups))
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for d := range cfg.Devices {
		name := DeviceName(d)
		seqs := sub.seqs[name]
		// A device's messages arrive in order, each duplicate right after its original.
		next, dups := cfg.SeqStart, int64(0)
		for i, s := range seqs {
			switch {
			case s == next:
				next++
			case i > 0 && s == seqs[i-1] && Duplicated(d, s, cfg.Duplicates):
				dups++
			default:
				t.Fatalf("%s: seq %d at position %d, want %d (received %v)", name, s, i, next, seqs)
			}
		}
		if got := int64(next - cfg.SeqStart); got != cfg.DeviceQuota(d) || dups != wantDups[name] {
			t.Errorf("%s: subscriber saw %d messages and %d duplicates, want %d and %d", name, got, dups, cfg.DeviceQuota(d), wantDups[name])
		}
	}
}

// TestRateLimits checks only that -rate holds publishing back: timing on a
// shared machine is too noisy to assert accuracy.
func TestRateLimits(t *testing.T) {
	b := startMosquitto(t)
	cfg := testConfig(b.URL)
	cfg.Devices, cfg.Publishers = 4, 2
	cfg.Count = 200
	cfg.Rate = 1000
	rep := runGenerator(t, cfg)
	if rep.Totals.Acked != 200 {
		t.Errorf("acked %d, want 200", rep.Totals.Acked)
	}
	// Token k is due at k/rate: 200 messages at 1000/s cannot take less than ~199 ms.
	if rep.PublishSeconds < 0.15 {
		t.Errorf("200 messages at rate 1000 were published in %.3fs, want >= 0.15s", rep.PublishSeconds)
	}
}

// TestDurationStops checks that -duration ends the run and that the rate
// bounds what was published in it.
func TestDurationStops(t *testing.T) {
	b := startMosquitto(t)
	cfg := testConfig(b.URL)
	cfg.Devices, cfg.Publishers = 4, 2
	cfg.Duration = 300 * time.Millisecond
	cfg.Rate = 400
	start := time.Now()
	rep := runGenerator(t, cfg)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("run took %v", took)
	}
	// Each publisher's pacer has at most rate·t + 1 tokens due after t.
	if rep.Totals.Attempted < 1 || rep.Totals.Attempted > 400*0.3+2+4 {
		t.Errorf("attempted %d in 300ms at rate 400", rep.Totals.Attempted)
	}
	if rep.Totals.Failed != 0 || rep.Totals.Acked != rep.Totals.Attempted {
		t.Errorf("totals %+v", rep.Totals)
	}
	for _, dr := range rep.Devices {
		if dr.Gaps != 0 {
			t.Errorf("device %+v has gaps", dr)
		}
	}
}

func TestQoS0And2(t *testing.T) {
	b := startMosquitto(t)
	for _, qos := range []byte{0, 2} {
		cfg := testConfig(b.URL)
		cfg.Devices, cfg.Publishers = 6, 2
		cfg.Count = 300
		cfg.Rate = 0
		cfg.QoS = qos
		cfg.Duplicates = 0.2
		rep := runGenerator(t, cfg)
		if rep.Totals.Attempted != 300 || rep.Totals.Acked != 300 || rep.Totals.Failed != 0 ||
			rep.Totals.DuplicatesSent == 0 || rep.Totals.DuplicatesAcked != rep.Totals.DuplicatesSent {
			t.Errorf("QoS %d: totals %+v", qos, rep.Totals)
		}
	}
}

// TestResendsAfterBrokerRestart kills the broker in the middle of a run:
// paho resends what was not acknowledged once it reconnects, and the report
// still counts every message exactly once.
func TestResendsAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds")
	}
	b := startMosquitto(t)
	cfg := testConfig(b.URL)
	cfg.Devices, cfg.Publishers = 4, 2
	cfg.Count = 1200
	cfg.Rate = 400 // 3 s of publishing
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(800 * time.Millisecond)
		b.crash()
		time.Sleep(300 * time.Millisecond)
		b.restart()
	}()
	defer func() { <-restarted }()
	rep := runGenerator(t, cfg)
	if rep.ConnectionLosses < 1 {
		t.Errorf("connection losses %d: the broker restart went unnoticed", rep.ConnectionLosses)
	}
	if rep.Totals.Attempted != 1200 || rep.Totals.Acked != 1200 || rep.Totals.Failed != 0 {
		t.Errorf("totals %+v, failures %v", rep.Totals, rep.Failures)
	}
	for _, dr := range rep.Devices {
		if dr.Acked != 300 || dr.Gaps != 0 {
			t.Errorf("device %+v", dr)
		}
	}
}

func TestConnectFailsFast(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1") // nothing listens on port 1
	cfg.Count = 1
	gen, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Run(t.Context()); !errors.Is(err, ErrConnect) {
		t.Errorf("Run = %v, want ErrConnect", err)
	}
	// The command says so with its own exit status: nothing was published,
	// so a caller may run it again (the chaos run's device burst does).
	var stdout, stderr strings.Builder
	if code := run([]string{"-broker", "tcp://127.0.0.1:1", "-count", "1"}, &stdout, &stderr); code != exitConnect {
		t.Errorf("exit status %d, want %d (%s)", code, exitConnect, stderr.String())
	}
}

// TestBinary builds the command and runs it as a user would: settings from
// the environment, flags winning over them, the JSON report on disk.
func TestBinary(t *testing.T) {
	b := startMosquitto(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "loadgen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	reportPath := filepath.Join(dir, "report.json")
	cmd := exec.Command(bin, "-count", "300", "-report", reportPath, "-rate", "0")
	cmd.Env = append(os.Environ(),
		"EDGEFLOW_LOADGEN_BROKER="+b.URL,
		"EDGEFLOW_LOADGEN_DEVICES=5",
		"EDGEFLOW_LOADGEN_SITES=2",
		"EDGEFLOW_LOADGEN_COUNT=999", // the flag wins
		"EDGEFLOW_LOADGEN_CLIENT_PREFIX=bin-test",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, out)
	}
	for _, want := range []string{"attempted 300  acked 300  failed 0", "dev-0004", "p99"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	raw, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, raw)
	}
	if rep.Config.Devices != 5 || rep.Config.Sites != 2 || rep.Totals.Acked != 300 || len(rep.Devices) != 5 ||
		rep.Devices[4].Site != "site-0" || *rep.Devices[4].LastSeq != 60 {
		t.Errorf("report %s", raw)
	}

	// Invalid settings are refused before connecting, with exit status 2.
	cmd = exec.Command(bin, "-broker", b.URL)
	cmd.Env = os.Environ()
	out, err = cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitUsage || !strings.Contains(string(out), "-count or -duration") {
		t.Errorf("without -count and -duration: %v\n%s", err, out)
	}
}

// TestResentMessagesNeedTheirOwnAck pins down why acknowledgements are read
// from paho's store and not from its tokens: on reconnect paho resends the
// stored messages under new tokens and completes the caller's tokens without
// an error, although no PUBACK ever came. The fake broker here accepts
// connections and never acknowledges anything, so nothing may count as acked.
func TestResentMessagesNeedTheirOwnAck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				if _, err := c.Read(buf); err != nil { // CONNECT
					return
				}
				if _, err := c.Write([]byte{0x20, 0x02, 0x00, 0x00}); err != nil { // CONNACK, accepted
					return
				}
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	go func() {
		first := <-conns
		time.Sleep(300 * time.Millisecond)
		first.Close() // paho reconnects (after ~1 s) and resends
	}()

	cfg := testConfig("tcp://" + l.Addr().String())
	cfg.Devices, cfg.Sites, cfg.Publishers = 1, 1, 1
	cfg.Count = 5
	cfg.Rate = 0
	cfg.DrainTimeout = 2500 * time.Millisecond
	rep := runGenerator(t, cfg)
	if rep.ConnectionLosses != 1 {
		t.Errorf("connection losses %d, want 1", rep.ConnectionLosses)
	}
	want := Totals{Attempted: 5, Failed: 5}
	if rep.Totals != want || rep.Failures[reasonNoAck] != 5 {
		t.Errorf("totals %+v failures %v, want %+v all for %q", rep.Totals, rep.Failures, want, reasonNoAck)
	}
}
