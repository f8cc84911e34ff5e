package devenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// MosquittoConfig is the broker configuration shipped with the project,
// relative to the repository root. Tests run the broker from this file so
// that what they test is what K3s runs.
const MosquittoConfig = "manifests/base/mosquitto/mosquitto.conf"

// MosquittoOptions describe a Mosquitto broker for StartMosquitto.
type MosquittoOptions struct {
	// Bin is the broker executable; empty means MosquittoBinary().
	Bin string
	// Dir holds the derived configuration, the persistence database (data/),
	// the PID file and the log. Required. Start again on the same Dir and
	// Port to get the same broker back, with its persisted sessions and
	// queued messages.
	Dir string
	// Port is the loopback port to listen on; 0 picks a free one.
	Port int
	// ConfigPath is the configuration to derive from; empty means the
	// shipped <repo>/manifests/base/mosquitto/mosquitto.conf.
	ConfigPath string
	// Secure, when set, runs the shipped authentication, ACL and TLS with
	// these files in place of the cluster's. When nil the broker runs in
	// anonymous mode: plain MQTT, anonymous clients, no ACL (every other
	// setting as shipped), which is what tests of delivery and outages use.
	Secure *MosquittoSecurity
}

// MosquittoSecurity are the files of a secure broker (see
// MosquittoOptions.Secure); scripts/secrets makes the cluster's, and tests
// make theirs with the same code (package secure).
type MosquittoSecurity struct {
	// PasswordFile replaces password_file. Required.
	PasswordFile string
	// ACLFile replaces acl_file; empty means the ACL shipped beside
	// ConfigPath (acl).
	ACLFile string
	// CertFile, KeyFile and CAFile replace certfile, keyfile and cafile of
	// the TLS listener. Required.
	CertFile, KeyFile, CAFile string
}

// MosquittoACL is the ACL shipped with the broker configuration.
const MosquittoACL = "manifests/base/mosquitto/acl"

// MosquittoBinary finds the broker: mosquitto in PATH, else
// /usr/sbin/mosquitto (Debian's place, often not in a non-root PATH).
func MosquittoBinary() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/mosquitto"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", fmt.Errorf("mosquitto %w: run scripts/install-deps.sh", ErrNotInstalled)
}

// StartMosquitto starts a broker on 127.0.0.1 from the shipped configuration,
// with only the listener, persistence location, PID file, log destination
// and the security files replaced (see mosquittoConfig), and waits until it
// serves MQTT. The returned Process has Addr (host:port) and URL
// (tcp://host:port, or ssl://host:port with Secure, as paho takes it);
// Process.Restart brings the broker back on the same port with its persisted
// state.
func StartMosquitto(ctx context.Context, opts MosquittoOptions) (*Process, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("start mosquitto: no Dir")
	}
	if opts.Bin == "" {
		bin, err := MosquittoBinary()
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	if opts.ConfigPath == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, fmt.Errorf("start mosquitto: %w", err)
		}
		opts.ConfigPath = filepath.Join(root, MosquittoConfig)
	}
	if opts.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("start mosquitto: %w", err)
		}
		opts.Port = port
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	shipped, err := os.ReadFile(opts.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	sec := opts.Secure
	if sec != nil {
		if sec.PasswordFile == "" || sec.CertFile == "" || sec.KeyFile == "" || sec.CAFile == "" {
			return nil, fmt.Errorf("start mosquitto: Secure needs PasswordFile, CertFile, KeyFile and CAFile")
		}
		s := *sec
		if s.ACLFile == "" {
			s.ACLFile = filepath.Join(filepath.Dir(opts.ConfigPath), "acl")
		}
		for _, f := range []*string{&s.PasswordFile, &s.ACLFile, &s.CertFile, &s.KeyFile, &s.CAFile} {
			if *f, err = filepath.Abs(*f); err != nil {
				return nil, fmt.Errorf("start mosquitto: %w", err)
			}
		}
		sec = &s
	}
	conf, err := mosquittoConfig(string(shipped), opts.Port, dir, os.Geteuid() == 0, sec)
	if err != nil {
		return nil, fmt.Errorf("start mosquitto: %s: %w", opts.ConfigPath, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	confPath := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))
	url, ready := "tcp://"+addr, func(ctx context.Context) error { return ProbeMQTT(ctx, addr) }
	if sec != nil {
		pem, err := os.ReadFile(sec.CAFile)
		if err != nil {
			return nil, fmt.Errorf("start mosquitto: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("start mosquitto: %s: no PEM certificate", sec.CAFile)
		}
		tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		url, ready = "ssl://"+addr, func(ctx context.Context) error { return probeSecureMQTT(ctx, addr, tc) }
	}
	return StartProcess(ctx, ProcessOptions{
		Name:  "mosquitto",
		Bin:   opts.Bin,
		Args:  []string{"-c", confPath},
		Dir:   dir,
		Addr:  addr,
		URL:   url,
		Ready: ready,
	})
}

// securityKeys are the settings of authentication, authorisation and TLS:
// replaced by the test files in secure mode, dropped in anonymous mode.
var securityKeys = map[string]bool{
	"allow_anonymous": true, "password_file": true, "acl_file": true,
	"certfile": true, "keyfile": true, "cafile": true, "capath": true, "crlfile": true,
	"tls_version": true, "require_certificate": true, "use_identity_as_username": true,
	"use_subject_as_username": true, "ciphers": true, "ciphers_tls1.3": true,
	"psk_file": true, "psk_hint": true, "plugin": true, "auth_plugin": true,
}

// mosquittoConfig derives the configuration devenv runs from the shipped one:
// the single `listener` line becomes a loopback listener on port (in place,
// so listener-specific options after it still apply to it), and
// persistence_location, pid_file and log_dest point into dir (log to stdout,
// which the Process log collects). With sec, the paths of password_file,
// acl_file, certfile, keyfile and cafile are replaced in place by sec's, and
// the shipped configuration must have each of them; without sec (anonymous
// mode) every security setting is commented out and allow_anonymous is true.
// Everything else is kept as shipped.
//
// As root, Mosquitto switches to the `mosquitto` user, which cannot write
// into a test's root-owned 0700 directory; asRoot adds `user root` to keep
// the broker's user. As any other user the option has no effect.
func mosquittoConfig(shipped string, port int, dir string, asRoot bool, sec *MosquittoSecurity) (string, error) {
	var files map[string]string
	if sec != nil {
		files = map[string]string{"password_file": sec.PasswordFile, "acl_file": sec.ACLFile,
			"certfile": sec.CertFile, "keyfile": sec.KeyFile, "cafile": sec.CAFile}
	}
	seen := map[string]bool{}
	replaced := map[string]bool{
		"persistence_location": true,
		"pid_file":             true,
		"log_dest":             true,
		"user":                 true,
	}
	var out []string
	listeners := 0
	for line := range strings.Lines(shipped) {
		line = strings.TrimRight(line, "\r\n")
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			out = append(out, line)
			continue
		}
		switch key := fields[0]; {
		case key == "listener":
			listeners++
			if listeners > 1 {
				return "", fmt.Errorf("devenv supports one listener, found another: %q", line)
			}
			out = append(out, fmt.Sprintf("listener %d 127.0.0.1", port))
		case key == "port" || key == "bind_address":
			return "", fmt.Errorf("use a listener line instead of the deprecated %q", line)
		case replaced[key]:
			out = append(out, "# (replaced by devenv) "+line)
		case securityKeys[key] && sec == nil:
			out = append(out, "# (anonymous mode) "+line)
		case files[key] != "":
			if seen[key] {
				return "", fmt.Errorf("devenv supports one %s, found another: %q", key, line)
			}
			seen[key] = true
			out = append(out, "# (replaced by devenv) "+line, key+" "+files[key])
		default:
			out = append(out, line)
		}
	}
	if listeners == 0 {
		return "", fmt.Errorf("no listener line")
	}
	for key := range files {
		if !seen[key] {
			return "", fmt.Errorf("secure mode: no %s line to replace", key)
		}
	}
	out = append(out,
		"",
		"# --- devenv: where this broker runs ---",
		"persistence_location "+filepath.Join(dir, "data"),
		"pid_file "+filepath.Join(dir, "mosquitto.pid"),
		"log_dest stdout",
	)
	if sec == nil {
		out = append(out, "allow_anonymous true")
	}
	if asRoot {
		out = append(out, "user root")
	}
	return strings.Join(out, "\n") + "\n", nil
}
