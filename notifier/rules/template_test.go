package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const amFile = `channels:
  am:
    type: alertmanager
    url: http://alertmanager:9093/
    labels: {cluster: edge-1, team: ops}
    dashboard_url: https://edgeflow.example.com/
    template: "{{.Rule}} on {{.Site}}/{{.Device}}: {{num .Value}}"
  am-ha:
    type: alertmanager
    url: [https://am-0.example:9093, https://am-1.example:9093/prefix]
    bearer_token_env: EDGEFLOW_AM_TOKEN
    resend: 30s
    timeout: 3s
  am-basic:
    type: alertmanager
    url: http://am:9093
    username: edgeflow
    password_file: {pwfile}
    resend: 0
  ops:
    type: webhook
    url_env: EDGEFLOW_WEBHOOK_OPS_URL
    template: "{{if eq .State \"firing\"}}FIRE{{else}}ok{{end}} {{upper .Severity}} {{.Summary}}"
  log:
    type: log
    template: "{{.Rule}}"
rules:
  - name: hot
    metric: temperature
    window: 10s
    op: ">"
    threshold: 40
    repeat: 10m
    channels: [log, am, am-ha, ops]
  - name: gone
    type: offline
    after: 30s
    channels: [am-basic]
`

func parseAM(t *testing.T, file string) (*Set, error) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file = strings.ReplaceAll(file, "{pwfile}", pw)
	env := func(k string) (string, bool) {
		if k == "EDGEFLOW_AM_TOKEN" {
			return "tok-123456", true
		}
		return lookup(k)
	}
	return Parse("rules.yaml", []byte(file), env)
}

func TestParseAlertmanagerChannels(t *testing.T) {
	set, err := parseAM(t, amFile)
	if err != nil {
		t.Fatal(err)
	}
	am := set.Channels["am"]
	if am.Type != Alertmanager || strings.Join(am.Alertmanager.URLs, ",") != "http://alertmanager:9093" ||
		am.Alertmanager.Resend != DefaultResend || am.Alertmanager.Labels["cluster"] != "edge-1" ||
		am.Alertmanager.DashboardURL != "https://edgeflow.example.com" || am.Template == nil || am.Timeout != DefaultTimeout {
		t.Fatalf("am = %+v", am)
	}
	ha := set.Channels["am-ha"].Alertmanager
	if len(ha.URLs) != 2 || ha.URLs[1] != "https://am-1.example:9093/prefix" ||
		ha.Resend != 30*time.Second || ha.BearerToken.Env != "EDGEFLOW_AM_TOKEN" {
		t.Fatalf("am-ha = %+v", ha)
	}
	if tok, err := ha.BearerToken.Get(); err != nil || tok != "tok-123456" {
		t.Fatalf("bearer token %q, %v", tok, err)
	}
	basic := set.Channels["am-basic"].Alertmanager
	if pw, err := basic.Password.Get(); err != nil || pw != "s3cret-pass" || basic.Username != "edgeflow" || basic.Resend != 0 {
		t.Fatalf("am-basic = %+v: password %q, %v", basic, pw, err)
	}
	// A rotated file is read again at the next use.
	if err := os.WriteFile(basic.Password.File, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	if pw, _ := basic.Password.Get(); pw != "rotated" {
		t.Fatalf("after rotation: %q", pw)
	}

	// Re-sends go to the rule's alertmanager channels that re-send, at the
	// shortest interval; reminders to the others.
	hot := set.Rule("hot")
	if every, to := set.Resend(hot); every != 30*time.Second || strings.Join(to, ",") != "am,am-ha" {
		t.Fatalf("Resend(hot) = %v %v", every, to)
	}
	if to := set.Reminded(hot); strings.Join(to, ",") != "log,ops" {
		t.Fatalf("Reminded(hot) = %v", to)
	}
	if every, to := set.Resend(set.Rule("gone")); every != 0 || to != nil {
		t.Fatalf("Resend(gone) = %v %v (resend: 0)", every, to)
	}
}

func TestParseAlertmanagerProblems(t *testing.T) {
	ch := func(body string) string {
		return "channels:\n  am:\n    type: alertmanager\n" + body + "rules: []\n"
	}
	// The channel's fields start on line 4.
	tests := []struct {
		name string
		file string
		line int
		want string
	}{
		{"no url", ch("    resend: 1m\n"), 3, "channels.am.url: missing"},
		{"url not http", ch("    url: ftp://am:9093\n"), 4, "want an http(s) URL"},
		{"url with credentials", ch("    url: http://u:hunter2@am:9093\n"), 4, "credentials in the URL"},
		{"bad url with credentials", ch("    url: ftp://u:hunter2@am:9093\n"), 4, "credentials in the URL"},
		{"url with query", ch("    url: http://am:9093/?x=1\n"), 4, "base URL only"},
		{"empty url list", ch("    url: []\n"), 4, "at least one URL"},
		{"url twice", ch("    url: [http://am:9093, http://am:9093/]\n"), 4, "listed twice"},
		{"bad url in a list", ch("    url:\n      - http://am:9093\n      - am-1:9093\n"), 6, "channels.am.url[1]"},
		{"username without password", ch("    url: http://am:9093\n    username: u\n"), 3, "password_env or password_file"},
		{"password without username", ch("    url: http://am:9093\n    password_env: EDGEFLOW_SMTP_PASSWORD\n"), 3, "channels.am.username"},
		{"basic and bearer", ch("    url: http://am:9093\n    username: u\n    password_env: EDGEFLOW_SMTP_PASSWORD\n    bearer_token_env: EDGEFLOW_SMTP_PASSWORD\n"), 3, "not both"},
		{"env and file", ch("    url: http://am:9093\n    bearer_token_env: EDGEFLOW_SMTP_PASSWORD\n    bearer_token_file: /x\n"), 6, "not both"},
		{"literal token", ch("    url: http://am:9093\n    bearer_token: abc\n"), 5, "bearer_token_env"},
		{"missing token file", ch("    url: http://am:9093\n    bearer_token_file: /nonexistent/token\n"), 5, "cannot read the secret"},
		{"relative token file", ch("    url: http://am:9093\n    bearer_token_file: token\n"), 5, "absolute path"},
		{"unset token variable", ch("    url: http://am:9093\n    bearer_token_env: EDGEFLOW_NOPE\n"), 5, "EDGEFLOW_NOPE is not set"},
		{"reserved label", ch("    url: http://am:9093\n    labels: {severity: high}\n"), 5, "set by the notifier"},
		{"bad label name", ch("    url: http://am:9093\n    labels: {\"a-b\": x}\n"), 5, "label name"},
		{"labels not a mapping", ch("    url: http://am:9093\n    labels: [a]\n"), 5, "mapping of label names"},
		{"resend too short", ch("    url: http://am:9093\n    resend: 100ms\n"), 5, "between 1s and 1h"},
		{"bad dashboard url", ch("    url: http://am:9093\n    dashboard_url: edgeflow.example.com\n"), 5, "dashboard's http(s) base URL"},
		{"smtp field", ch("    url: http://am:9093\n    to: [a@b.c]\n"), 5, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("rules.yaml", []byte(tt.file), lookup)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			found := false
			for _, p := range perr.Problems {
				if p.Line == tt.line && strings.Contains(p.String(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem on line %d about %q: %v", tt.line, tt.want, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error quotes a password: %v", err)
			}
		})
	}
}

// A template writes the summary from the notification's fields.
func TestTemplateRendering(t *testing.T) {
	tm, err := ParseTemplate("t", `{{upper .Severity}} {{.Rule}} {{.State}} at {{.Site}}/{{.Device}}: {{.Metric}} {{.Aggregate}} {{num .Value}} {{.Op}} {{.Threshold}}`+
		`{{if .HasClear}} (clear {{.Clear}}){{end}} since {{.Since.UTC.Format "15:04:05"}}{{if .Repeat}} again{{end}} [{{.Summary}}]`)
	if err != nil {
		t.Fatal(err)
	}
	d := templateSamples[0]
	d.Value = 42.3456
	got, err := RenderTemplate(tm, d)
	want := "CRITICAL hot firing at site/dev: temperature mean 42.35 > 40 (clear 35) since 03:04:00 [" + d.Summary + "]"
	if err != nil || got != want {
		t.Fatalf("rendered %q, %v\nwant     %q", got, err, want)
	}
	// Output is cut, spaces trimmed.
	long, err := ParseTemplate("t", ` {{printf "%5000s" "x"}} `)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := RenderTemplate(long, d); err != nil || len(got) > MaxSummaryBytes+len("…") {
		t.Fatalf("long output: %d bytes, %v", len(got), err)
	}
}

// A broken template is a rules error with its line and field, found when
// the file loads: a syntax error, an unknown field, a function misused on
// some kind of notification only.
func TestBrokenTemplateRefusedAtLoad(t *testing.T) {
	ch := func(tmpl string) string {
		return "channels:\n  log:\n    type: log\n    template: " + tmpl + "\nrules: []\n"
	}
	tests := []struct{ name, tmpl, want string }{
		{"syntax", `"{{.Rule"`, "unclosed action"},
		{"unknown field", `"{{.Rul}}"`, "can't evaluate field Rul"},
		{"unknown function", `"{{humanize .Value}}"`, `function "humanize" not defined`},
		{"wrong argument type", `"{{num .Rule}}"`, "wrong type"},
		{"fails on offline rules only", `"{{if eq .Kind \"offline\"}}{{index .Metric 5}}{{end}}"`, "fails on an offline firing notification"},
		{"empty", `""`, "want a value"},
		{"range", `"{{.Rule}}{{range 1000000000000}}x{{end}}"`, "range is not supported"},
		{"range in an if", `"{{if .Repeat}}{{else}}{{range .Seq}}x{{end}}{{end}}"`, "range is not supported"},
		{"recursion", `"{{define \"a\"}}{{template \"a\"}}{{end}}{{template \"a\"}}"`, "not supported"},
		{"too long", `"` + strings.Repeat("x", MaxTemplateBytes+1) + `"`, "at most 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("rules.yaml", []byte(ch(tt.tmpl)), lookup)
			if err == nil || !strings.Contains(err.Error(), "rules.yaml:4: channels.log.template: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v\nwant a problem on line 4 of channels.log.template about %q", err, tt.want)
			}
		})
	}
}
