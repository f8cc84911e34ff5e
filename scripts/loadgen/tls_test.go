package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeflow/edgeflow/devenv"
)

const devicePassword = "device-pw-3e9a71-never-shown"

// The flags a cluster test uses to publish to the shipped, secure broker:
// -username, -password and -cafile over ssl://. Every message is
// acknowledged; a wrong password or a missing CA fails the run, and no
// output shows the password.
func TestRunAgainstSecureBroker(t *testing.T) {
	_, err := devenv.MosquittoBinary()
	devenv.RequireInstalled(t, err)
	dir := t.TempDir()
	sec, err := devenv.WriteMosquittoSecurity(filepath.Join(dir, "sec"), map[string]string{"device": devicePassword})
	if err != nil {
		t.Fatal(err)
	}
	broker, err := devenv.StartMosquitto(t.Context(), devenv.MosquittoOptions{Dir: filepath.Join(dir, "broker"), Secure: sec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Stop(t.Context()) })

	report := filepath.Join(dir, "report.json")
	args := []string{"-broker", broker.URL, "-username", "device", "-cafile", sec.CAFile,
		"-server-name", "localhost", "-count", "200", "-devices", "10", "-publishers", "2", "-rate", "0", "-report", report}
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "-password", devicePassword), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Acked != 200 {
		t.Fatalf("acked %d of 200 over TLS", rep.Totals.Acked)
	}

	for name, extra := range map[string][]string{
		"wrong password": {"-password", "wrong-" + devicePassword, "-client-prefix", "bad1", "-drain-timeout", "2s"},
		"no CA":          {"-password", devicePassword, "-cafile", "", "-client-prefix", "bad2", "-drain-timeout", "2s"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(append(args, extra...), &stdout, &stderr); code == exitOK {
			t.Errorf("%s: exit 0", name)
		}
		if out := stdout.String() + stderr.String(); strings.Contains(out, devicePassword) {
			t.Errorf("%s: the output shows the password:\n%s", name, out)
		}
	}

	stderr.Reset()
	if code := run([]string{"-broker", "tcp://127.0.0.1:1", "-cafile", sec.CAFile, "-count", "1"}, &stdout, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "need a TLS -broker") {
		t.Errorf("-cafile with a plain broker: exit %d, %s", code, stderr.String())
	}
}
