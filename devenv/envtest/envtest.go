// Package envtest fuzzes how a service reads its configuration from the
// environment. Whatever EDGEFLOW_* variables hold, loading returns a
// configuration or an error that names a variable; it never panics, and an
// error never repeats a secret: the value of a password or token variable, or
// the password inside a URL's userinfo.
package envtest

import (
	"net/url"
	"strings"
	"testing"

	"github.com/edgeflow/edgeflow/internal/service"
)

// Fuzz registers the fuzz target for one service's configuration: spec is a
// pointer to its Config (for the variable names), load reads the environment
// the way the service does at start-up. Each input sets two variables, so
// combinations (a user without a password, a certificate without its key) are
// explored too.
func Fuzz(f *testing.F, spec any, load func() error) {
	keys, err := service.EnvKeys(spec)
	if err != nil || len(keys) == 0 {
		f.Fatalf("variables of %T: %v", spec, err)
	}
	for i := range keys {
		for _, v := range seedValues {
			f.Add(uint16(i), v, uint16(i+1), "")
		}
	}
	f.Fuzz(func(t *testing.T, k1 uint16, v1 string, k2 uint16, v2 string) {
		set := map[string]string{keys[int(k1)%len(keys)]: v1}
		if k := keys[int(k2)%len(keys)]; set[k] == "" {
			set[k] = v2
		}
		for k, v := range set {
			if strings.ContainsRune(v, 0) {
				t.Skip("an environment value cannot hold NUL")
			}
			t.Setenv(k, v)
		}
		err := load()
		if err == nil {
			return
		}
		msg := err.Error()
		if !strings.Contains(msg, "EDGEFLOW_") {
			t.Errorf("error names no variable: %q", msg)
		}
		for k, v := range set {
			for _, s := range secretsIn(k, v) {
				if strings.Contains(msg, s) {
					t.Errorf("error repeats the secret of %s (%q): %q", k, s, msg)
				}
			}
		}
	})
}

// secretsIn returns what must never be printed of variable k set to v: the
// whole value of a password or token, the password in a URL variable's
// userinfo. Short strings are left out: they occur in any message by chance.
// (A value put in the wrong variable, say a URL in a duration, is echoed in
// the error as given: that is the helpful message, and it is not a secret's
// place.)
func secretsIn(k, v string) []string {
	const minLen = 8
	var out []string
	if isSecret(k) && len(v) >= minLen {
		out = append(out, v)
	}
	if !strings.HasSuffix(k, "_URL") {
		return out
	}
	for _, part := range strings.Split(v, ",") {
		if u, err := url.Parse(strings.TrimSpace(part)); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && len(p) >= minLen {
				out = append(out, p)
			}
		}
	}
	return out
}

func isSecret(k string) bool {
	for _, w := range []string{"PASSWORD", "TOKEN", "SECRET"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// seedValues are tried in every variable: empty, zero, negative, huge,
// malformed durations and URLs, URLs with credentials, control characters.
var seedValues = []string{
	"",
	"0",
	"-1",
	"99999999999999999999",
	"1e309",
	"x",
	"10s",
	"-5m",
	"1h0m0s0",
	"true",
	"tcp://",
	"nats://user:hunter2-long-secret@127.0.0.1:4222",
	"tcp://ingest:s3cret-password-value@broker:1883",
	"http://admin:influx-secret-123@127.0.0.1:8086",
	"a,b,,c",
	"sensors/#,$share/g/x",
	"line1\nline2\r\x1b[31m",
	strings.Repeat("A", 4096),
	"super-secret-token-value-0123456789",
}

// Refused is one configuration a service must refuse: the variables set,
// and a part of the error (usually the variable's name) that tells the
// operator what to fix.
type Refused struct {
	Env  map[string]string
	Want string
}

// ExpectRefused sets base and then each case's variables, and checks that
// load refuses each case with an error containing its Want.
func ExpectRefused(t *testing.T, base map[string]string, cases []Refused, load func() error) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Want, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range c.Env {
				t.Setenv(k, v)
			}
			if err := load(); err == nil || !strings.Contains(err.Error(), c.Want) {
				t.Fatalf("load() = %v, want an error naming %s", err, c.Want)
			}
		})
	}
}

// Documented fails t unless doc (docs/configuration.md, relative to the
// test's package) documents every EDGEFLOW_* variable of each spec, a
// pointer to a configuration struct, with its default.
func Documented(t testing.TB, doc string, specs ...any) {
	t.Helper()
	for _, spec := range specs {
		missing, err := service.CheckDocumented(doc, spec)
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) > 0 {
			t.Errorf("%s does not document %v", doc, missing)
		}
	}
}
