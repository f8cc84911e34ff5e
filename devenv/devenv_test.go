package devenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// helperEnv makes the test binary act as a child process for the process
// tests (see runHelper) instead of running tests.
const helperEnv = "EDGEFLOW_DEVENV_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper plays a service binary:
//   - serve: answers /readyz on $HELPER_ADDR, exits 0 on SIGTERM;
//   - stubborn: ignores SIGTERM;
//   - crash: prints a configuration error and exits 3;
//   - parent: starts a "serve" child with StartProcess, prints its PID, waits.
func runHelper(mode string) int {
	switch mode {
	case "serve":
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		l, err := net.Listen("tcp", os.Getenv("HELPER_ADDR"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		fmt.Println("serving on", l.Addr())
		<-term
		fmt.Println("draining")
		return 0
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		select {}
	case "crash":
		fmt.Fprintln(os.Stderr, "invalid config: EDGEFLOW_NATS_URL must be set")
		return 3
	case "parent":
		child, err := startHelper(context.Background(), "serve-child", "serve", os.Getenv("HELPER_DIR"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("child pid %d\n", child.Pid())
		select {}
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// startHelper starts the test binary as a helper in mode. Modes that serve
// HTTP are waited for through ReadyURL.
func startHelper(ctx context.Context, name, mode, dir string, opts ...func(*ProcessOptions)) (*Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	o := ProcessOptions{
		Name: name,
		Bin:  self,
		Env: []string{
			helperEnv + "=" + mode, "HELPER_ADDR=" + addr, "HELPER_DIR=" + dir,
			// A -race binary sleeps 1 s at exit by default; not worth waiting for.
			"GORACE=atexit_sleep_ms=0",
		},
		Dir:  dir,
		Addr: addr,
	}
	if mode == "serve" {
		o.ReadyURL = "http://" + addr + "/readyz"
	}
	for _, opt := range opts {
		opt(&o)
	}
	return StartProcess(ctx, o)
}

// pidGone reports whether no live process has the PID. A zombie counts as
// gone: it no longer runs, and reaping an orphan is up to PID 1.
func pidGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses: "pid (comm) Z ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z'
	}
	return false
}

func waitPidGone(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !pidGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive after %s", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stopOnCleanup(t *testing.T, p *Process) {
	t.Cleanup(func() {
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("stop %s: %v", p.Name, err)
		}
	})
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: bad or repeated %d", ports, p)
		}
		seen[p] = true
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, MosquittoConfig)); err != nil {
		t.Fatalf("repo root %s: %v", root, err)
	}
}

type fakeTB struct{ skipped, failed string }

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

func TestRequireInstalled(t *testing.T) {
	missing := fmt.Errorf("influxd %w at /x: run scripts/install-influxdb.sh", ErrNotInstalled)

	t.Setenv("CI", "")
	var tb fakeTB
	RequireInstalled(&tb, missing)
	if tb.skipped == "" || tb.failed != "" {
		t.Errorf("missing binary outside CI: want skip, got %+v", tb)
	}

	t.Setenv("CI", "true")
	tb = fakeTB{}
	RequireInstalled(&tb, missing)
	if tb.failed == "" || tb.skipped != "" {
		t.Errorf("missing binary in CI: want failure, got %+v", tb)
	}

	t.Setenv("CI", "")
	tb = fakeTB{}
	RequireInstalled(&tb, errors.New("boom"))
	if tb.failed == "" {
		t.Errorf("other error: want failure, got %+v", tb)
	}
}

func TestProcessStopKillRestart(t *testing.T) {
	ctx := t.Context()
	p, err := startHelper(ctx, "svc", "serve", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, p)

	pid := p.Pid()
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitPidGone(t, pid, time.Second)
	if log, _ := p.Log(); !strings.Contains(log, "draining") {
		t.Errorf("log does not show the SIGTERM drain:\n%s", log)
	}

	if err := p.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if p.Pid() == pid {
		t.Fatalf("restart kept pid %d", pid)
	}
	pid = p.Pid()
	if err := p.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	waitPidGone(t, pid, time.Second)
	// Stopping a killed process is quiet: the kill was asked for.
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop after kill: %v", err)
	}

	if err := p.Restart(ctx); err != nil {
		t.Fatalf("restart after kill: %v", err)
	}
	if log, _ := p.Log(); strings.Count(log, "--- devenv ") != 3 {
		t.Errorf("want 3 runs marked in the log:\n%s", log)
	}
}

func TestProcessExitBeforeReady(t *testing.T) {
	_, err := startHelper(t.Context(), "svc", "crash", t.TempDir(), func(o *ProcessOptions) {
		o.ReadyURL = "http://" + o.Addr + "/readyz"
	})
	if err == nil {
		t.Fatal("start succeeded")
	}
	for _, want := range []string{"exited before it was ready", "exit status 3", "EDGEFLOW_NATS_URL must be set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestProcessNotReadyInTime(t *testing.T) {
	_, err := startHelper(t.Context(), "svc", "stubborn", t.TempDir(), func(o *ProcessOptions) {
		o.ReadyURL = "http://" + o.Addr + "/readyz"
		o.ReadyTimeout = 300 * time.Millisecond
	})
	if err == nil || !strings.Contains(err.Error(), "not ready after") || !strings.Contains(err.Error(), "ignoring SIGTERM") {
		t.Fatalf("want a not-ready error quoting the log, got %v", err)
	}
}

func TestProcessWait(t *testing.T) {
	p, err := startHelper(t.Context(), "svc", "crash", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait(t.Context())
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "must be set") {
		t.Fatalf("want exit status 3 with the log, got %v", err)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	p, err := startHelper(t.Context(), "svc", "stubborn", t.TempDir(), func(o *ProcessOptions) {
		o.StopTimeout = 300 * time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let it install its SIGTERM handler
	pid := p.Pid()
	err = p.Stop(t.Context())
	if err == nil || !strings.Contains(err.Error(), "killed with SIGKILL") {
		t.Fatalf("want a SIGKILL error, got %v", err)
	}
	waitPidGone(t, pid, time.Second)
}

// A child outlives nothing: when the process that started it dies (as a test
// binary killed by a timeout does), the child gets SIGKILL.
func TestChildDiesWithParent(t *testing.T) {
	dir := t.TempDir()
	parent, err := startHelper(t.Context(), "parent", "parent", dir, func(o *ProcessOptions) {
		o.Ready = func(context.Context) error {
			b, _ := os.ReadFile(filepath.Join(dir, "parent.log"))
			if !bytes.Contains(b, []byte("child pid ")) {
				return errors.New("no child yet")
			}
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := parent.Log()
	var childPid int
	if _, err := fmt.Sscanf(log[strings.Index(log, "child pid "):], "child pid %d", &childPid); err != nil {
		t.Fatalf("no child pid in parent log: %v\n%s", err, log)
	}
	if pidGone(childPid) {
		t.Fatalf("child %d is not running", childPid)
	}
	if err := parent.Kill(); err != nil {
		t.Fatal(err)
	}
	waitPidGone(t, childPid, 5*time.Second)
}

func TestMosquittoConfigDerivation(t *testing.T) {
	shipped := "# c\nper_listener_settings false\nlistener 1883\nmax_connections -1\npersistence true\n" +
		"persistence_location /mosquitto/data/\nlog_dest stdout\nlog_dest file /x.log\nmax_queued_messages 0\n"
	got, err := mosquittoConfig(shipped, 5555, "/tmp/d", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "# c\nper_listener_settings false\nlistener 5555 127.0.0.1\nmax_connections -1\npersistence true\n" +
		"# (replaced by devenv) persistence_location /mosquitto/data/\n" +
		"# (replaced by devenv) log_dest stdout\n# (replaced by devenv) log_dest file /x.log\nmax_queued_messages 0\n" +
		"\n# --- devenv: where this broker runs ---\npersistence_location /tmp/d/data\npid_file /tmp/d/mosquitto.pid\n" +
		"log_dest stdout\nallow_anonymous true\nuser root\n"
	if got != want {
		t.Errorf("derived config:\n%s\nwant:\n%s", got, want)
	}

	for _, bad := range []string{"persistence true\n", "listener 1883\nlistener 8883\n", "port 1883\n"} {
		if _, err := mosquittoConfig(bad, 1, "/d", false, nil); err == nil {
			t.Errorf("config %q: no error", bad)
		}
	}
}

// requireMosquitto returns the paths of mosquitto_pub and mosquitto_sub, or
// ends the test as RequireInstalled does.
func requireMosquitto(t *testing.T) (pub, sub string) {
	t.Helper()
	_, err := MosquittoBinary()
	RequireInstalled(t, err)
	pub, err = exec.LookPath("mosquitto_pub")
	if err == nil {
		sub, err = exec.LookPath("mosquitto_sub")
	}
	if err != nil {
		err = fmt.Errorf("mosquitto clients %w (%v): run scripts/install-deps.sh", ErrNotInstalled, err)
	}
	RequireInstalled(t, err)
	return pub, sub
}

// A persistent subscriber that is offline while more messages than
// Mosquitto's default queue limit (1000) arrive gets all of them, also across
// a broker restart: the shipped configuration neither drops QoS 1 messages
// in a burst nor loses them on restart.
func TestMosquittoQueuesAcrossRestart(t *testing.T) {
	pubBin, subBin := requireMosquitto(t)
	ctx := t.Context()
	dir := t.TempDir()
	began := time.Now()
	p, err := StartMosquitto(ctx, MosquittoOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, p)
	t.Logf("mosquitto ready at %s in %s", p.URL, time.Since(began).Round(time.Millisecond))

	if err := ProbeMQTT(ctx, p.Addr); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(p.Addr)
	conn := []string{"-h", "127.0.0.1", "-p", port, "-q", "1", "-V", "mqttv311"}
	sub := append([]string{"-c", "-i", "devenv-test-ingest", "-t", "sensors/#"}, conn...)
	run := func(stdin string, bin string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
		}
		return string(out)
	}

	// Register the persistent session and go offline (-E: exit once subscribed).
	run("", subBin, append(sub, "-E")...)

	const n = 1500
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "%d\n", i)
	}
	run(lines.String(), pubBin, append([]string{"-t", "sensors/lab/t1", "-l"}, conn...)...)

	pid, addr := p.Pid(), p.Addr
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitPidGone(t, pid, time.Second)
	if p.Pid() == pid || p.Addr != addr {
		t.Fatalf("after restart: pid %d (was %d), addr %s (was %s)", p.Pid(), pid, p.Addr, addr)
	}

	// -W: give up after 15 s without all n messages (exit status 27).
	out, err := exec.CommandContext(ctx, subBin, append(sub, "-C", strconv.Itoa(n), "-W", "15")...).Output()
	got := strings.Fields(string(out))
	if err != nil || len(got) != n {
		t.Fatalf("received %d of %d queued messages (mosquitto_sub: %v)", len(got), n, err)
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, v)
		}
	}

	// The queue bound that let all n through is the shipped one.
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, MosquittoConfig))
	if err != nil {
		t.Fatal(err)
	}
	bound := regexp.MustCompile(`(?m)^max_queued_messages [1-9][0-9]*$`).FindString(string(shipped))
	conf, err := os.ReadFile(filepath.Join(dir, "mosquitto.conf"))
	if err != nil || bound == "" || !strings.Contains(string(conf), "\n"+bound+"\n") {
		t.Errorf("derived config does not carry the shipped max_queued_messages %q (%v):\n%s", bound, err, conf)
	}
}

// mqttPublishQoS1 publishes one QoS 1 message with a raw MQTT 3.1.1
// connection and waits for the PUBACK.
func mqttPublishQoS1(t *testing.T, addr, topic, payload string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(mqttConnect("devenv-test-pub")); err != nil {
		t.Fatal(err)
	}
	var connack [4]byte
	if _, err := io.ReadFull(c, connack[:]); err != nil || connack[3] != 0 {
		t.Fatalf("connack % x: %v", connack, err)
	}
	body := append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...)
	body = append(body, 0x00, 0x01) // packet identifier 1
	body = append(body, payload...)
	if len(body) > 127 {
		t.Fatal("test publish too long for a one-byte remaining length")
	}
	if _, err := c.Write(append([]byte{0x32, byte(len(body))}, body...)); err != nil {
		t.Fatal(err)
	}
	var puback [4]byte
	if _, err := io.ReadFull(c, puback[:]); err != nil || puback != [4]byte{0x40, 0x02, 0x00, 0x01} {
		t.Fatalf("puback % x: %v", puback, err)
	}
	_, _ = c.Write([]byte{0xe0, 0x00})
}

// NATS with JetStream and MQTT: an MQTT QoS 1 publish and a JetStream publish
// land in one stream, are consumed, and are still there after a restart on
// the same store directory and port.
func TestNATSJetStreamAndMQTT(t *testing.T) {
	ctx := t.Context()
	storeDir := t.TempDir()
	mqttPort, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	opts := NATSOptions{StoreDir: storeDir, MQTTPort: mqttPort}
	s, err := StartNATS(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })

	js := connectJS(t, s.ClientURL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TEST", Subjects: []string{"sensors.>"}}); err != nil {
		t.Fatal(err)
	}

	mqttAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(mqttPort))
	if err := ProbeMQTT(ctx, mqttAddr); err != nil {
		t.Fatal(err)
	}
	mqttPublishQoS1(t, mqttAddr, "sensors/lab/t1", `{"temperature":21.5}`)
	if _, err := js.Publish(ctx, "sensors.lab.t2", []byte(`{"temperature":19}`)); err != nil {
		t.Fatal(err)
	}

	cons, err := js.CreateOrUpdateConsumer(ctx, "TEST", jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for msg := range batch.Messages() {
		got = append(got, msg.Subject()+" "+string(msg.Data()))
		if err := msg.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Error(); err != nil {
		t.Fatal(err)
	}
	want := []string{`sensors.lab.t1 {"temperature":21.5}`, `sensors.lab.t2 {"temperature":19}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("consumed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	js.Conn().Close()

	// Restart on the same store and ports, as a crash test does.
	u, err := url.Parse(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	opts.Port, _ = strconv.Atoi(u.Port())
	s.Shutdown()
	s.WaitForShutdown()
	s, err = StartNATS(opts)
	if err != nil {
		t.Fatal(err)
	}
	js = connectJS(t, s.ClientURL())
	stream, err := js.Stream(ctx, "TEST")
	if err != nil {
		t.Fatal(err)
	}
	if msgs := stream.CachedInfo().State.Msgs; msgs != 2 {
		t.Fatalf("after restart the stream has %d messages, want 2", msgs)
	}
	if err := ProbeMQTT(ctx, mqttAddr); err != nil {
		t.Fatalf("mqtt after restart: %v", err)
	}
}

func influxQuery(t *testing.T, base, db, q string) string {
	t.Helper()
	resp, err := http.Get(base + "/query?" + url.Values{"db": {db}, "q": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query %q: %s: %s", q, resp.Status, b)
	}
	return string(b)
}

// InfluxDB 1.8.3: create a database, write a point through /write, read it
// through InfluxQL /query (Flux, which nothing reads with, is refused),
// restart with the data kept,
// and stop by PID.
func TestInfluxDB(t *testing.T) {
	_, err := InfluxdBinary()
	RequireInstalled(t, err)
	ctx := t.Context()
	const db = "edgeflow_test"

	began := time.Now()
	p, err := StartInfluxDB(ctx, InfluxOptions{Dir: t.TempDir(), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, p)
	t.Logf("influxd ready at %s in %s", p.URL, time.Since(began).Round(time.Millisecond))

	resp, err := http.Post(p.URL+"/write?db="+db+"&precision=ms", "text/plain",
		strings.NewReader("telemetry,site=lab,device=t1 temperature=21.5 1732560000123\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %s: %s", resp.Status, b)
	}

	var result struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	out := influxQuery(t, p.URL, db, `SELECT temperature FROM telemetry WHERE site = 'lab'`)
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		t.Fatal(err)
	}
	if len(result.Results) != 1 || len(result.Results[0].Series) != 1 ||
		fmt.Sprint(result.Results[0].Series[0].Values) != "[[2024-11-25T18:40:00.123Z 21.5]]" {
		t.Fatalf("query result: %s", out)
	}

	flux := `from(bucket: "` + db + `/autogen") |> range(start: 2024-11-25T00:00:00Z, stop: 2024-11-26T00:00:00Z) |> filter(fn: (r) => r._measurement == "telemetry")`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/api/v2/query", strings.NewReader(flux))
	req.Header.Set("Content-Type", "application/vnd.flux")
	req.Header.Set("Accept", "application/csv")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("flux query: %s: %s; want 403: Flux off, a smaller surface", resp.Status, b)
	}

	began = time.Now()
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("influxd restarted in %s", time.Since(began).Round(time.Millisecond))
	if out := influxQuery(t, p.URL, db, `SELECT count(temperature) FROM telemetry`); !strings.Contains(out, `,1]]`) {
		t.Fatalf("after restart: %s", out)
	}

	// InfluxDB.Query and Scalar, what the tests and tools count with.
	idb := InfluxDB{URL: p.URL, Database: db}
	if n, err := idb.Scalar(ctx, `SELECT count(temperature) FROM telemetry`); err != nil || n != 1 {
		t.Fatalf("Scalar(count) = %v, %v; want 1", n, err)
	}
	if n, err := idb.Scalar(ctx, `SELECT count(temperature) FROM nothing_written`); err != nil || n != 0 {
		t.Fatalf("Scalar of no series = %v, %v; want 0, nil", n, err)
	}
	if _, err := idb.Scalar(ctx, `SELEKT 1`); err == nil {
		t.Fatal("Scalar of a malformed query: no error")
	}
	ss, err := idb.Query(ctx, `SELECT last(temperature) FROM telemetry GROUP BY device`)
	if err != nil || len(ss) != 1 || ss[0].Tags["device"] != "t1" || len(ss[0].Values) != 1 || ss[0].Values[0][0] != float64(1732560000123) {
		t.Fatalf("Query = %+v, %v; want one series for t1 at 1732560000123 ms", ss, err)
	}

	pid := p.Pid()
	began = time.Now()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("influxd stopped in %s", time.Since(began).Round(time.Millisecond))
	if !pidGone(pid) {
		t.Fatalf("influxd pid %d still alive after Stop", pid)
	}
	if _, err := http.Get(p.URL + "/ping"); err == nil {
		t.Fatal("influxd still answers after Stop")
	}
}

// connectJS connects to the NATS server at url for the rest of the test.
func connectJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
