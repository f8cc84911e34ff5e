package rules

import (
	"errors"
	"math"
	"os"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// FuzzParse: whatever the rules file holds, Parse returns a valid Set or an
// *Error listing problems within the file's lines; it never panics, never
// repeats a channel secret from the environment, and gives the same answer
// twice. Seeds: the shipped rules.yaml, the example of docs/alerting.md, every problem
// case of TestParseProblems, and testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("../../rules.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(validFile))
	f.Add([]byte("rules: []\n"))
	f.Add([]byte("rules:\n  - &a {name: x, type: offline, after: 1m, channels: [log]}\n  - *a\nchannels: {log: {type: log}}\n"))
	f.Add([]byte("rules: [" + strings.Repeat("[", 200) + "\n"))
	f.Add([]byte("channels:\n  w:\n    type: webhook\n    url_env: EDGEFLOW_WEBHOOK_OPS_URL\n    url: https://x/secret-token\nrules: []\n"))
	f.Add([]byte(strings.ReplaceAll(amFile, "{pwfile}", "/etc/hostname")))
	f.Add([]byte("channels:\n  l:\n    type: log\n    template: \"{{.Rule}} {{num .Value}} {{if .Repeat}}again{{end}}\"\nrules: []\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("rules.yaml", data, lookup)
		set2, err2 := Parse("rules.yaml", data, lookup)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("two parses differ: %v / %v", err, err2)
		}
		if err != nil {
			checkParseError(t, data, err)
			return
		}
		if set.Version != set2.Version || len(set.Rules) != len(set2.Rules) {
			t.Fatalf("two parses differ: version %s/%s, %d/%d rules", set.Version, set2.Version, len(set.Rules), len(set2.Rules))
		}
		checkSet(t, set)
	})
}

func checkParseError(t *testing.T, data []byte, err error) {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) || !errors.Is(err, ErrInvalid) || len(perr.Problems) == 0 {
		t.Fatalf("error %T %v: want an *Error with problems", err, err)
	}
	lines := yamlLines(string(data))
	for _, p := range perr.Problems {
		if p.Line < 0 || p.Line > lines+1 {
			t.Errorf("problem on line %d of a %d-line file: %s", p.Line, lines, p)
		}
	}
	for _, secret := range testEnv {
		if len(secret) >= 8 && strings.Contains(err.Error(), secret) && !strings.Contains(string(data), secret) {
			t.Errorf("error repeats a secret from the environment: %q", err)
		}
	}
}

// yamlLines counts lines as the YAML parser does: \r\n, \r, \n and the
// Unicode breaks NEL, LS and PS each end one.
func yamlLines(s string) int {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}

// checkSet asserts what every accepted rules file satisfies.
func checkSet(t *testing.T, set *Set) {
	t.Helper()
	for name, c := range set.Channels {
		if c.Type == Alertmanager && (len(c.Alertmanager.URLs) == 0 || c.Alertmanager.Resend < 0 || c.Alertmanager.Resend > time.Hour) {
			t.Errorf("channel %q: alertmanager target %+v accepted", name, c.Alertmanager)
		}
		if c.TemplateText != "" {
			if c.Template == nil {
				t.Errorf("channel %q: template %q accepted without being compiled", name, c.TemplateText)
				continue
			}
			for _, d := range templateSamples {
				if _, err := RenderTemplate(c.Template, d); err != nil {
					t.Errorf("channel %q: template %q accepted, fails: %v", name, c.TemplateText, err)
				}
			}
		}
	}
	names := map[string]bool{}
	for _, r := range set.Rules {
		if names[r.Name] {
			t.Errorf("rule %q accepted twice", r.Name)
		}
		names[r.Name] = true
		for _, pat := range []string{r.Site, r.Device} {
			if _, err := path.Match(pat, "x"); err != nil {
				t.Errorf("rule %q: bad pattern %q accepted", r.Name, pat)
			}
		}
		switch r.Kind {
		case Threshold:
			if !reading.ValidName(r.Metric) {
				t.Errorf("rule %q: metric %q accepted", r.Name, r.Metric)
			}
			if math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) || math.IsNaN(r.Clear) || math.IsInf(r.Clear, 0) {
				t.Errorf("rule %q: threshold %v clear %v accepted", r.Name, r.Threshold, r.Clear)
			}
			if r.HasClear && r.Clears(r.Threshold) && r.Breaches(r.Threshold) {
				t.Errorf("rule %q: a value at the threshold both breaches and clears", r.Name)
			}
			if r.For < 0 {
				t.Errorf("rule %q: negative for %v", r.Name, r.For)
			}
		case Offline:
			if r.After <= 0 {
				t.Errorf("rule %q: offline after %v accepted", r.Name, r.After)
			}
		default:
			t.Errorf("rule %q: kind %q accepted", r.Name, r.Kind)
		}
		if len(r.Channels) == 0 {
			t.Errorf("rule %q has no channel", r.Name)
		}
		for _, c := range r.Channels {
			if _, ok := set.Channels[c]; !ok {
				t.Errorf("rule %q: unknown channel %q accepted", r.Name, c)
			}
		}
	}
}
