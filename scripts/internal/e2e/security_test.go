package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/edgeflow/edgeflow/devenv"
	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/secure"
	"github.com/edgeflow/edgeflow/scripts/internal/launcher"
)

// The security tests run the pipeline as the cluster runs it: secrets made by
// scripts/secrets, NATS with the shipped users and permissions
// (manifests/base/nats/auth.conf) behind TLS, Mosquitto with the shipped
// password file, ACL and TLS listener (manifests/base/mosquitto/), and every
// service logging in as its own user.

// secretsBin is scripts/secrets, built once for the security tests.
var secretsBin struct {
	once sync.Once
	path string
	err  error
}

func buildSecrets(t *testing.T) string {
	t.Helper()
	secretsBin.once.Do(func() {
		root, err := devenv.RepoRoot()
		if err != nil {
			secretsBin.err = err
			return
		}
		secretsBin.path = filepath.Join(bins.dir, "secrets")
		cmd := exec.Command("go", "build", "-o", secretsBin.path, "./scripts/secrets")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			secretsBin.err = fmt.Errorf("go build ./scripts/secrets: %v\n%s", err, out)
		}
	})
	if secretsBin.err != nil {
		t.Fatal(secretsBin.err)
	}
	return secretsBin.path
}

// clusterSecrets are the files scripts/secrets wrote, read back.
type clusterSecrets struct {
	dir    string
	nats   map[string]string // user → password
	mqtt   map[string]string // user → password
	influx string            // the token the services get (1.8: admin:<password>)
	dash   string            // the dashboard token
	ca     string            // path of ca.crt
	tlsDir string
}

// all are every secret value, for the tests that look for leaks.
func (s clusterSecrets) all() map[string]string {
	out := map[string]string{"influx token": s.influx, "dashboard token": s.dash}
	for u, p := range s.nats {
		out["NATS password of "+u] = p
	}
	for u, p := range s.mqtt {
		out["MQTT password of "+u] = p
	}
	return out
}

func generateSecrets(t *testing.T, dir string) clusterSecrets {
	t.Helper()
	out, err := exec.Command(buildSecrets(t), "-out", dir, "-influx18").CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/secrets: %v\n%s", err, out)
	}
	read := func(parts ...string) string {
		b, err := os.ReadFile(filepath.Join(append([]string{dir}, parts...)...))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	s := clusterSecrets{dir: dir, nats: map[string]string{}, mqtt: map[string]string{},
		tlsDir: filepath.Join(dir, "edgeflow-mqtt-tls")}
	for _, u := range []string{"ingest", "processor", "notifier", "dashboard"} {
		s.nats[u] = read("edgeflow-nats", u)
	}
	for _, u := range []string{"ingest", "device"} {
		s.mqtt[u] = read("edgeflow-mqtt", u+"-password")
	}
	s.influx = read("edgeflow-influxdb", "processor-token")
	s.dash = read("edgeflow-dashboard", "token")
	s.ca = filepath.Join(s.tlsDir, "ca.crt")
	return s
}

// serverLog collects the NATS server's log lines (permission violations
// are logged there).
type serverLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *serverLog) add(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
}
func (l *serverLog) Noticef(f string, v ...any) { l.add("[INF] "+f, v...) }
func (l *serverLog) Warnf(f string, v ...any)   { l.add("[WRN] "+f, v...) }
func (l *serverLog) Fatalf(f string, v ...any)  { l.add("[FTL] "+f, v...) }
func (l *serverLog) Errorf(f string, v ...any)  { l.add("[ERR] "+f, v...) }
func (l *serverLog) Debugf(f string, v ...any)  {}
func (l *serverLog) Tracef(f string, v ...any)  {}

// grep returns the lines that contain s.
func (l *serverLog) grep(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// securePipeline is a pipeline whose servers run the shipped security.
type securePipeline struct {
	*pipeline
	secrets clusterSecrets
	natsLog *serverLog
}

func newSecurePipeline(t *testing.T) *securePipeline {
	t.Helper()
	if bins.err != nil {
		t.Fatalf("build: %v", bins.err)
	}
	_, err := devenv.MosquittoBinary()
	devenv.RequireInstalled(t, err)
	root, err := devenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	sec := generateSecrets(t, filepath.Join(t.TempDir(), "secrets"))
	// NATS reads the users' passwords from its environment, as in the
	// StatefulSet (manifests/base/nats.yaml).
	for u, pw := range sec.nats {
		t.Setenv(strings.ToUpper(u)+"_PASSWORD", pw)
	}
	p := startServers(t, options{security: &launcher.Security{
		CA: sec.ca, Cert: filepath.Join(sec.tlsDir, "tls.crt"), Key: filepath.Join(sec.tlsDir, "tls.key"),
		NATSAuthConfig:   filepath.Join(root, devenv.NATSAuthConfig),
		MQTTPasswordFile: filepath.Join(sec.dir, "edgeflow-mqtt", "passwd"),
		NATSPasswords:    sec.nats,
		MQTTUser:         "ingest", MQTTPassword: sec.mqtt["ingest"],
		InfluxToken: sec.influx, DashboardToken: sec.dash,
	}})
	sp := &securePipeline{pipeline: p, secrets: sec, natsLog: &serverLog{}}
	p.nats.SetLogger(sp.natsLog, false, false)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		saveArtifact(t, "nats-server.log", sp.natsLog.String())
		if log, err := p.mqtt.Log(); err == nil {
			saveArtifact(t, "mosquitto.log", log)
		}
	})
	// p.mqttURL is ssl://127.0.0.1:<port>; 127.0.0.1 is in the certificate.

	// The test's own reads (dead letters on failure) go through the
	// read-only dashboard user.
	p.nc, err = sp.connect("dashboard", sec.nats["dashboard"], nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.nc.Close)
	if p.js, err = jetstream.New(p.nc); err != nil {
		t.Fatal(err)
	}
	return sp
}

// connect logs in to NATS as user over TLS with the cluster's CA; errs, when
// set, receives the asynchronous errors (permission violations).
func (sp *securePipeline) connect(user, password string, errs chan<- error) (*nats.Conn, error) {
	opts := []nats.Option{nats.UserInfo(user, password), nats.RootCAs(sp.secrets.ca),
		nats.CustomInboxPrefix(bus.InboxPrefix(user)), nats.MaxReconnects(-1)}
	if errs != nil {
		opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	}
	return nats.Connect(sp.natsURL, opts...)
}

// mqttClient connects to the broker as user over TLS.
func (sp *securePipeline) mqttClient(user, password string) (mqtt.Client, error) {
	tc, err := secure.TLSFiles{CA: sp.secrets.ca}.Config()
	if err != nil {
		return nil, err
	}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(sp.mqttURL).SetClientID("sec-" + user + "-" + sp.db).
		SetUsername(user).SetPassword(password).SetTLSConfig(tc).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt connect as %s: %v", user, tok.Error())
	}
	return c, nil
}

// The whole pipeline under the shipped users and permissions, over TLS:
// every reading a device publishes is counted exactly, an alert reaches its
// webhook, the dashboard serves only with its token, and the NATS server
// logs no permission violation (the permissions are enough). Then each
// service's user tries what it must not do, and the server refuses. No
// secret appears in any service's log, /metrics or /readyz.
func TestSecurePipeline(t *testing.T) {
	sp := newSecurePipeline(t)
	sec := sp.secrets
	// The launcher logs every service in as its own NATS user over TLS,
	// ingest as its broker user (launcher.Security).
	ingest := sp.startIngest("ingest")
	// Two processors: the partitions' hand-over (leases handed back and
	// taken) runs under the permissions too.
	processor := sp.startProcessor("p1")
	processor2 := sp.startProcessor("p2")

	hooks := make(chan string, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case hooks <- string(b):
		default:
		}
	}))
	defer hook.Close()
	rules := hookRules(t, "sec", "")
	notifier := sp.startNotifier(rules, "EDGEFLOW_E2E_HOOK_URL="+hook.URL)
	dashboard := sp.startDashboard()
	services := []*devenv.Process{ingest, processor, processor2, notifier, dashboard}

	// Readings from the load generator, as the device user over TLS.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 3000
	rep := sp.loadgen(ctx, "-username", "device", "-password", sec.mqtt["device"], "-cafile", sec.ca,
		"-count", strconv.Itoa(n), "-devices", "20", "-sites", "2", "-rate", "1500")
	if rep.Totals.Acked != n {
		t.Fatalf("loadgen: %d of %d acknowledged", rep.Totals.Acked, n)
	}
	// p2 stops (SIGTERM): it hands its partitions back and p1 takes them.
	if err := processor2.Stop(ctx); err != nil {
		t.Errorf("stop p2: %v", err)
	}
	// And a hot device, for the notifier.
	dev, err := sp.mqttClient("device", sec.mqtt["device"])
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(100)
	for range 20 {
		dev.Publish("sensors/sec/hot", 1, false, `{"temperature":50}`).WaitTimeout(5 * time.Second)
		time.Sleep(200 * time.Millisecond)
	}
	// A payload ingest rejects: dead-lettered under ingest's permissions,
	// read back with the dashboard's.
	dev.Publish("sensors/sec/bad", 1, false, "not a reading").WaitTimeout(5 * time.Second)
	sp.expectCounts("temperature", n+20, 90*time.Second)
	found := false
	for _, m := range sp.deadLetters() {
		found = found || m.Subject() == "deadletter.ingest"
	}
	if !found {
		t.Error("the rejected payload was not dead-lettered by ingest")
	}
	select {
	case body := <-hooks:
		if !strings.Contains(body, `"firing"`) {
			t.Errorf("webhook got %s, want the hot alert firing", body)
		}
	case <-time.After(30 * time.Second):
		t.Error("no notification reached the webhook under the notifier's permissions")
	}
	sp.checkDashboardToken(dashboard)

	if v := sp.natsLog.grep("Violation"); len(v) > 0 {
		t.Errorf("the services ran into %d permission violations (auth.conf lacks what they need):\n%s", len(v), strings.Join(v, "\n"))
	}
	for _, s := range services {
		if log, _ := s.Log(); strings.Contains(strings.ToLower(log), "permissions violation") {
			t.Errorf("%s logged a permissions violation", s.Name)
		}
	}

	sp.checkForbidden()
	// The refusals above are in the server's log: the check for violations
	// during the run looked at the right place.
	if len(sp.natsLog.grep("Violation")) == 0 {
		t.Error("the NATS server logged no violation for the forbidden actions: is its log captured?")
	}
	sp.checkNoLeaks(services)
}

// checkDashboardToken: the dashboard's pages need its token; /healthz,
// /readyz and /metrics do not (probes and Prometheus), and none of them
// returns the token.
func (sp *securePipeline) checkDashboardToken(d *devenv.Process) {
	t := sp.t
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", d.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/", "/api/alerts"} {
		if code, _ := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("dashboard %s without the token: %d, want 401", path, code)
		}
		if code, _ := get(path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("dashboard %s with a wrong token: %d, want 401", path, code)
		}
		code, body := get(path, sp.secrets.dash)
		if code != http.StatusOK {
			t.Errorf("dashboard %s with the token: %d", path, code)
		}
		if strings.Contains(body, sp.secrets.dash) {
			t.Errorf("dashboard %s shows its token", path)
		}
	}
}

// checkForbidden tries, with each service's own credentials, what its
// permissions must refuse.
func (sp *securePipeline) checkForbidden() {
	t := sp.t
	sec := sp.secrets
	// A message to see whether a refused publish got through anyway.
	probe := func(user, action string, do func(nc *nats.Conn, js jetstream.JetStream) error) {
		t.Helper()
		errs := make(chan error, 8)
		nc, err := sp.connect(user, sec.nats[user], errs)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		err = do(nc, js)
		if err == nil {
			_ = nc.Flush()
			select {
			case err = <-errs:
			case <-time.After(2 * time.Second):
			}
		}
		if err == nil {
			t.Errorf("%s could %s", user, action)
			return
		}
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permission") &&
			!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s %s: refused with %v, want a permissions violation", user, action, err)
		}
	}
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.Cleanup(cancel)
		return c
	}
	publish := func(subject string) func(*nats.Conn, jetstream.JetStream) error {
		return func(nc *nats.Conn, _ jetstream.JetStream) error { return nc.Publish(subject, []byte("{}")) }
	}
	subscribe := func(subject string) func(*nats.Conn, jetstream.JetStream) error {
		return func(nc *nats.Conn, _ jetstream.JetStream) error {
			_, err := nc.SubscribeSync(subject)
			return err
		}
	}
	probe("ingest", "publish to aggregates.>", publish("aggregates.2s.x.y"))
	probe("ingest", "publish another service's dead letters", publish("deadletter.processor"))
	probe("ingest", "subscribe to telemetry", subscribe("telemetry.>"))
	probe("ingest", "read TELEMETRY with a consumer", func(_ *nats.Conn, js jetstream.JetStream) error {
		_, err := js.OrderedConsumer(ctx(), bus.StreamTelemetry, jetstream.OrderedConsumerConfig{})
		return err
	})
	probe("ingest", "delete the TELEMETRY stream", func(_ *nats.Conn, js jetstream.JetStream) error {
		return js.DeleteStream(ctx(), bus.StreamTelemetry)
	})
	probe("processor", "publish readings", publish("telemetry.x.y"))
	probe("processor", "publish alerts", publish("alerts.x.y.z"))
	probe("processor", "read the notifier's alert state", func(_ *nats.Conn, js jetstream.JetStream) error {
		_, err := js.KeyValue(ctx(), "ALERT_STATE")
		return err
	})
	probe("notifier", "purge TELEMETRY", func(_ *nats.Conn, js jetstream.JetStream) error {
		s, err := js.Stream(ctx(), bus.StreamTelemetry)
		if err != nil {
			return err
		}
		return s.Purge(ctx())
	})
	probe("notifier", "publish readings", publish("telemetry.x.y"))
	probe("dashboard", "publish readings", publish("telemetry.x.y"))
	probe("dashboard", "publish anything", publish("anything.at.all"))
	probe("dashboard", "publish on the live feed", publish(bus.LiveSubject("0")))
	probe("dashboard", "subscribe to every reading", subscribe("telemetry.>"))
	probe("notifier", "publish on the live feed", publish(bus.LiveSubject("0")))
	probe("dashboard", "publish alerts", publish("alerts.x.y.z"))
	probe("dashboard", "write a key-value bucket", publish("$KV.ALERT_STATE.x"))
	probe("dashboard", "delete the ALERTS stream", func(_ *nats.Conn, js jetstream.JetStream) error {
		return js.DeleteStream(ctx(), bus.StreamAlerts)
	})
	probe("dashboard", "read another service's replies", subscribe(bus.InboxPrefix("processor")+".>"))
	probe("dashboard", "read every reply", subscribe("_INBOX.>"))

	// Who is not one of the users, or not on TLS, does not get in.
	for name, opts := range map[string][]nats.Option{
		"wrong password":          {nats.UserInfo("ingest", "wrong-"+sec.nats["ingest"]), nats.RootCAs(sec.ca)},
		"another user's password": {nats.UserInfo("ingest", sec.nats["processor"]), nats.RootCAs(sec.ca)},
		"no credentials":          {nats.RootCAs(sec.ca)},
		"untrusted CA":            {nats.UserInfo("ingest", sec.nats["ingest"]), nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12})},
	} {
		nc, err := nats.Connect(sp.natsURL, append(opts, nats.Timeout(3*time.Second))...)
		if err == nil {
			nc.Close()
			t.Errorf("NATS: %s: connected", name)
		}
	}
	// A device cannot log in as ingest, nor with another's password.
	if c, err := sp.mqttClient("ingest", sec.mqtt["device"]); err == nil {
		c.Disconnect(100)
		t.Error("MQTT: ingest with the device password connected")
	}
}

// checkNoLeaks looks for every secret in the services' logs, /metrics and
// /readyz.
func (sp *securePipeline) checkNoLeaks(services []*devenv.Process) {
	t := sp.t
	for _, s := range services {
		texts := map[string]string{}
		stopped := false
		select {
		case <-s.Done():
			stopped = true // its log only
		default:
		}
		for _, path := range []string{"/metrics", "/readyz", "/healthz"} {
			if stopped {
				break
			}
			resp, err := http.Get(s.URL + path)
			if err != nil {
				t.Errorf("%s %s: %v", s.Name, path, err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			texts[path] = string(b)
		}
		if log, err := s.Log(); err == nil {
			texts["log"] = log
		}
		// What is searched is really there: a JSON log and the metrics.
		if !strings.Contains(texts["log"], `"msg":`) || !stopped && !strings.Contains(texts["/metrics"], "edgeflow_") {
			t.Errorf("%s: no log or no metrics to search (log %d bytes, metrics %d bytes)", s.Name, len(texts["log"]), len(texts["/metrics"]))
		}
		assertNoSecret(t, s.Name, texts, sp.secrets.all())
	}
}

// assertNoSecret fails for every secret found in texts (what → content).
func assertNoSecret(t *testing.T, who string, texts, secrets map[string]string) {
	t.Helper()
	for where, text := range texts {
		for name, value := range secrets {
			if value != "" && strings.Contains(text, value) {
				t.Errorf("%s's %s shows the %s", who, where, name)
			}
		}
	}
}

// A service that cannot log in refuses to start, saying why, and neither
// its output nor its error shows the secret; ingest with a wrong MQTT
// password stays up and not ready without showing it.
func TestWrongCredentialsFailWithoutShowingSecrets(t *testing.T) {
	sp := newSecurePipeline(t)
	sec := sp.secrets
	secrets := sec.all()
	rules := filepath.Join(sp.dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte("channels:\n  log: {type: log}\nrules: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := map[string]string{}
	for u, pw := range sec.nats {
		wrong[u] = "wrong-" + pw
		secrets["wrong NATS password of "+u] = wrong[u]
	}
	for _, svc := range []struct{ name, bin string }{
		{"ingest", bins.ingest}, {"processor", bins.processor}, {"notifier", bins.notifier}, {"dashboard", bins.dashboard},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, svc.bin)
		cmd.Env = append(os.Environ(), sp.l.ServiceEnv(launcher.Service{Kind: svc.name, Env: []string{
			"EDGEFLOW_NATS_CONNECT_TIMEOUT=2s", "EDGEFLOW_NATS_PASSWORD=" + wrong[svc.name], "EDGEFLOW_RULES=" + rules,
		}}, sp.httpAddr())...)
		out, err := cmd.CombinedOutput()
		cancel()
		if err == nil {
			t.Errorf("%s started with a wrong NATS password", svc.name)
		}
		if !strings.Contains(string(out), "Authorization") {
			t.Errorf("%s's error does not say the login failed:\n%s", svc.name, tail(string(out), 2000))
		}
		assertNoSecret(t, svc.name, map[string]string{"output": string(out)}, secrets)
	}

	// MQTT: the broker refuses ingest's login; ingest keeps retrying, not
	// ready, and says so without the password.
	wrongMQTT := "wrong-" + sec.mqtt["ingest"]
	secrets["wrong MQTT password"] = wrongMQTT
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	proc, err := sp.l.Start(ctx, launcher.Service{Kind: launcher.Ingest, Name: "ingest-wrong-mqtt", ID: "ingest-wrong",
		Env: []string{"EDGEFLOW_MQTT_PASSWORD=" + wrongMQTT}, ReadyPath: "/healthz"})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Stop(context.Background())
	time.Sleep(3 * time.Second) // a few connection attempts
	texts := map[string]string{}
	for _, path := range []string{"/readyz", "/metrics"} {
		resp, err := http.Get(proc.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		texts[path] = string(b)
		if path == "/readyz" {
			var r struct {
				Failed map[string]string `json:"failed"`
			}
			_ = json.Unmarshal(b, &r)
			if resp.StatusCode != http.StatusServiceUnavailable || r.Failed["mqtt"] == "" {
				t.Errorf("ingest with a wrong MQTT password: /readyz %d %s, want 503 naming mqtt", resp.StatusCode, b)
			}
		}
	}
	_ = proc.Stop(context.Background())
	texts["log"], _ = proc.Log()
	assertNoSecret(t, "ingest", texts, secrets)
}
