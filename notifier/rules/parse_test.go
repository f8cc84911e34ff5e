package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

var testEnv = map[string]string{
	"EDGEFLOW_WEBHOOK_OPS_URL": "https://hooks.example.com/T0/secret-token",
	"EDGEFLOW_SLACK_URL":       "https://hooks.slack.example/services/X",
	"EDGEFLOW_SMTP_PASSWORD":   "hunter2",
	"NOT_A_URL":                "mailto:x@example.com",
}

func lookup(k string) (string, bool) { v, ok := testEnv[k]; return v, ok }

const validFile = `# the example of docs/alerting.md
channels:
  log:
    type: log
  ops:
    type: webhook
    url_env: EDGEFLOW_WEBHOOK_OPS_URL
    timeout: 5s
  chat:
    type: slack
    url_env: EDGEFLOW_SLACK_URL
  mail:
    type: smtp
    addr: smtp.example.com:587
    from: edgeflow@example.com
    to: [oncall@example.com, "Ops <ops@example.com>"]
    username: edgeflow
    password_env: EDGEFLOW_SMTP_PASSWORD
    starttls: true
rules:
  - name: warehouse-hot
    site: warehouse
    device: wh-*
    metric: temperature
    aggregate: mean
    window: 10s
    op: ">"
    threshold: 40
    clear: 35
    for: 20s
    severity: critical
    repeat: 10m
    channels: [log, ops, mail]
  - name: lab-offline
    type: offline
    site: lab
    device: "lab-0[12]"
    after: 30s
    channels: [chat]
  - name: cold
    metric: temperature
    window: 1m
    op: "<="
    threshold: -5
    channels: [log]
`

func TestParseValid(t *testing.T) {
	set, err := Parse("rules.yaml", []byte(validFile), lookup)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(set.Rules) != 3 || len(set.Channels) != 4 {
		t.Fatalf("got %d rules, %d channels", len(set.Rules), len(set.Channels))
	}
	hot := set.Rule("warehouse-hot")
	want := Rule{Name: "warehouse-hot", Kind: Threshold, Site: "warehouse", Device: "wh-*", Metric: "temperature",
		Aggregate: "mean", Window: "10s", Op: Above, Threshold: 40, Clear: 35, HasClear: true, For: 20 * time.Second,
		Severity: "critical", Repeat: 10 * time.Minute, Channels: []string{"log", "ops", "mail"}, Line: 21}
	if hot == nil || hot.Name != want.Name || hot.Window != want.Window || hot.Op != want.Op || hot.Clear != 35 ||
		!hot.HasClear || hot.For != want.For || hot.Repeat != want.Repeat || hot.Line != want.Line ||
		strings.Join(hot.Channels, ",") != "log,ops,mail" || hot.Severity != "critical" || hot.Device != "wh-*" {
		t.Fatalf("warehouse-hot = %+v\nwant %+v", hot, want)
	}
	off := set.Rule("lab-offline")
	if off.Kind != Offline || off.After != 30*time.Second || off.Severity != DefaultSeverity || off.Repeat != 0 {
		t.Fatalf("lab-offline = %+v", off)
	}
	cold := set.Rule("cold")
	if cold.Site != "*" || cold.Device != "*" || cold.Window != "1m" || cold.Aggregate != "mean" || cold.HasClear || cold.Threshold != -5 {
		t.Fatalf("cold = %+v", cold)
	}
	if c := set.Channels["ops"]; c.URL != testEnv["EDGEFLOW_WEBHOOK_OPS_URL"] || c.Timeout != 5*time.Second ||
		c.RetryInitial != DefaultRetryInitial || c.Type != Webhook {
		t.Fatalf("ops = %+v", c)
	}
	m := set.Channels["mail"].SMTP
	if m.Password != "hunter2" || !m.StartTLS || strings.Join(m.To, ",") != "oncall@example.com,ops@example.com" || m.From != "edgeflow@example.com" {
		t.Fatalf("mail = %+v", m)
	}
	if len(set.Version) != 12 {
		t.Fatalf("version %q", set.Version)
	}
	again, _ := Parse("rules.yaml", []byte(validFile+"\n# comment\n"), lookup)
	if again.Version == set.Version {
		t.Fatal("a changed file kept its version")
	}
}

// The example rules file at the repository root is valid (its channels
// need no secret).
func TestExampleRulesFileIsValid(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	set, err := Parse("rules.yaml", data, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("rules.yaml: %v", err)
	}
	hot := set.Rule("warehouse-hot")
	if hot == nil || !hot.Matches("warehouse", "wh-01") || hot.Window != "10s" || !hot.Breaches(41) || !hot.Clears(34.9) || hot.Clears(36) {
		t.Fatalf("warehouse-hot does not fire on the simulator's spike: %+v", hot)
	}
	var offline bool
	for _, r := range set.Rules {
		if r.Kind == Offline && r.Matches("lab", "lab-02") && r.After == 30*time.Second {
			offline = true
		}
	}
	if !offline {
		t.Fatal("no 30s offline rule for lab/lab-02")
	}
}

func TestParseProblems(t *testing.T) {
	rule := func(body string) string {
		return "channels:\n  log:\n    type: log\nrules:\n  - name: r1\n" + body
	}
	// Lines 1-5 are the header of rule(); the body starts on line 6.
	tests := []struct {
		name string
		file string
		line int
		want []string // substrings of the one problem
	}{
		{"empty file", "", 0, []string{"empty"}},
		{"only a comment", "# nothing\n", 0, []string{"empty"}},
		{"yaml syntax", "rules: []\nchannels: \"abc\n", 2, []string{"YAML syntax"}},
		{"yaml syntax on the first line", "a: b: c\n", 1, []string{"YAML syntax"}},
		{"top level list", "- a\n- b\n", 1, []string{"(top level)", "want a mapping"}},
		{"unknown top field", "rules: []\nrule: []\n", 2, []string{"rule", "unknown field"}},
		{"no rules key", "channels: {}\n", 1, []string{"rules", "missing"}},
		{"rules not a list", "rules: {a: 1}\n", 1, []string{"rules", "want a list"}},
		{"typo in a field", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshhold: 4\n    channels: [log]\n"), 9,
			[]string{"rules[0].threshhold", "unknown field"}},
		{"threshold missing", rule("    metric: t\n    window: 10s\n    op: \">\"\n    channels: [log]\n"), 5,
			[]string{"rules[0].threshold", "missing"}},
		{"threshold not a number", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: forty\n    channels: [log]\n"), 9,
			[]string{"rules[0].threshold", `want a number, got "forty"`}},
		{"threshold infinite", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: .inf\n    channels: [log]\n"), 9,
			[]string{"finite"}},
		{"bare > op", rule("    metric: t\n    window: 10s\n    op: >\n      x\n    threshold: 4\n    channels: [log]\n"), 8,
			[]string{"rules[0].op", "in quotes"}},
		{"unknown op", rule("    metric: t\n    window: 10s\n    op: \"=>\"\n    threshold: 4\n    channels: [log]\n"), 8,
			[]string{"rules[0].op", `"=>"`}},
		{"clear on the wrong side", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 40\n    clear: 45\n    channels: [log]\n"), 10,
			[]string{"rules[0].clear", "above the threshold"}},
		{"clear on the wrong side below", rule("    metric: t\n    window: 10s\n    op: \"<\"\n    threshold: 5\n    clear: 1\n    channels: [log]\n"), 10,
			[]string{"rules[0].clear", "below the threshold"}},
		{"window without unit", rule("    metric: t\n    window: 10\n    op: \">\"\n    threshold: 4\n    channels: [log]\n"), 7,
			[]string{"rules[0].window", "with its unit"}},
		{"negative for", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 4\n    for: -5s\n    channels: [log]\n"), 10,
			[]string{"rules[0].for", "negative"}},
		{"bad aggregate", rule("    metric: t\n    aggregate: median\n    window: 10s\n    op: \">\"\n    threshold: 4\n    channels: [log]\n"), 7,
			[]string{"rules[0].aggregate", "median", "mean"}},
		{"bad metric name", rule("    metric: temp.c\n    window: 10s\n    op: \">\"\n    threshold: 4\n    channels: [log]\n"), 6,
			[]string{"rules[0].metric", "A-Z"}},
		{"bad site glob", rule("    site: \"lab/*\"\n    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 4\n    channels: [log]\n"), 6,
			[]string{"rules[0].site", "glob"}},
		{"broken glob", rule("    device: \"lab-[\"\n    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 4\n    channels: [log]\n"), 6,
			[]string{"rules[0].device"}},
		{"unknown channel", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 4\n    channels: [log, pager]\n"), 10,
			[]string{"rules[0].channels[1]", `no channel "pager"`, "defined: log"}},
		{"no channels", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 4\n    channels: []\n"), 10,
			[]string{"rules[0].channels", "at least one"}},
		{"bad severity", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 4\n    severity: fatal\n    channels: [log]\n"), 10,
			[]string{"rules[0].severity", "info, warning, critical"}},
		{"offline field on threshold", rule("    metric: t\n    window: 10s\n    op: \">\"\n    threshold: 4\n    after: 5s\n    channels: [log]\n"), 10,
			[]string{"rules[0].after", "only to offline rules"}},
		{"threshold field on offline", rule("    type: offline\n    after: 30s\n    metric: t\n    channels: [log]\n"), 8,
			[]string{"rules[0].metric", "only to threshold rules"}},
		{"offline without after", rule("    type: offline\n    channels: [log]\n"), 5,
			[]string{"rules[0].after", "missing"}},
		{"offline after too short", rule("    type: offline\n    after: 500ms\n    channels: [log]\n"), 7,
			[]string{"rules[0].after", "at least 1s"}},
		{"repeat too short", rule("    type: offline\n    after: 5s\n    repeat: 10ms\n    channels: [log]\n"), 8,
			[]string{"rules[0].repeat"}},
		{"unknown type", rule("    type: anomaly\n    channels: [log]\n"), 6,
			[]string{"rules[0].type", "anomaly"}},
		{"field twice", rule("    type: offline\n    after: 5s\n    after: 6s\n    channels: [log]\n"), 8,
			[]string{"rules[0].after", "given twice (first on line 7)"}},
		{"missing name", "channels:\n  log:\n    type: log\nrules:\n  - type: offline\n    after: 5s\n    channels: [log]\n", 5,
			[]string{"rules[0].name", "missing"}},
		{"bad rule name", "channels:\n  log:\n    type: log\nrules:\n  - name: \"a b\"\n    type: offline\n    after: 5s\n    channels: [log]\n", 5,
			[]string{"rules[0].name", `"a b"`}},
		{"duplicate rule name", rule("    type: offline\n    after: 5s\n    channels: [log]\n  - name: r1\n    type: offline\n    after: 9s\n    channels: [log]\n"), 9,
			[]string{"rules[1].name", "already the name of the rule on line 5"}},
		{"literal webhook url", "channels:\n  ops:\n    type: webhook\n    url: https://x\nrules: []\n", 4,
			[]string{"channels.ops.url", "never written in the rules file", "url_env"}},
		{"literal smtp password", "channels:\n  m:\n    type: smtp\n    addr: h:25\n    from: a@b.c\n    to: [d@e.f]\n    username: u\n    password_env: EDGEFLOW_SMTP_PASSWORD\n    password: x\nrules: []\n", 9,
			[]string{"channels.m.password", "password_env"}},
		{"unset secret", "channels:\n  ops:\n    type: webhook\n    url_env: EDGEFLOW_NOPE\nrules: []\n", 4,
			[]string{"channels.ops.url_env", "EDGEFLOW_NOPE is not set"}},
		{"secret not a url", "channels:\n  ops:\n    type: slack\n    url_env: NOT_A_URL\nrules: []\n", 4,
			[]string{"channels.ops.url_env", "does not hold an http(s) URL"}},
		{"bad env name", "channels:\n  ops:\n    type: webhook\n    url_env: https://x\nrules: []\n", 4,
			[]string{"channels.ops.url_env", "name of an environment variable"}},
		{"channel without type", "channels:\n  ops:\n    url_env: X\nrules: []\n", 3,
			[]string{"channels.ops.type", "missing"}},
		{"channel field of another type", "channels:\n  l:\n    type: log\n    url_env: X\nrules: []\n", 4,
			[]string{"channels.l.url_env", "unknown field"}},
		{"bad channel name", "channels:\n  \"o.ps\":\n    type: log\nrules: []\n", 2,
			[]string{"channels.o.ps"}},
		{"smtp bad addr", "channels:\n  m:\n    type: smtp\n    addr: smtp.example.com\n    from: a@b.c\n    to: [d@e.f]\nrules: []\n", 4,
			[]string{"channels.m.addr", "host:port"}},
		{"smtp bad recipient", "channels:\n  m:\n    type: smtp\n    addr: h:25\n    from: a@b.c\n    to: [d@e.f, nobody]\nrules: []\n", 6,
			[]string{"channels.m.to[1]", "e-mail address"}},
		{"smtp username without password", "channels:\n  m:\n    type: smtp\n    addr: h:25\n    from: a@b.c\n    to: [d@e.f]\n    username: u\nrules: []\n", 3,
			[]string{"channels.m.password_env", "missing"}},
		{"smtp starttls not bool", "channels:\n  m:\n    type: smtp\n    addr: h:25\n    from: a@b.c\n    to: [d@e.f]\n    starttls: maybe\nrules: []\n", 7,
			[]string{"channels.m.starttls", "true or false"}},
		{"retry max below initial", "channels:\n  ops:\n    type: webhook\n    url_env: EDGEFLOW_WEBHOOK_OPS_URL\n    retry_initial: 10s\n    retry_max: 1s\nrules: []\n", 3,
			[]string{"channels.ops.retry_max", "shorter than retry_initial"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("rules.yaml", []byte(tt.file), lookup)
			var perr *Error
			if !errors.As(err, &perr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse = %v, want an *Error", err)
			}
			// The problem this case is about is on the expected line; a
			// mistake may cause a second one (a misspelt field is also a
			// missing one).
			found := false
			for _, p := range perr.Problems {
				if p.Line == tt.line && strings.Contains(p.String(), tt.want[0]) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem on line %d about %q: %v", tt.line, tt.want[0], err)
			}
			if len(perr.Problems) > 2 {
				t.Errorf("%d problems for one mistake:\n%v", len(perr.Problems), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			prefix := "rules.yaml: "
			if tt.line > 0 {
				prefix = "rules.yaml:" + strconv.Itoa(tt.line) + ": "
			}
			if !strings.HasPrefix(err.Error(), prefix) && !strings.Contains(err.Error(), "\n"+prefix) {
				t.Errorf("error %q has no line starting with %q", err, prefix)
			}
			// A secret never appears in a message.
			for _, secret := range testEnv {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error quotes the secret %q", secret)
				}
			}
		})
	}
}

// Every problem of a file is reported at once, in line order.
func TestParseReportsEveryProblem(t *testing.T) {
	file := `rules:
  - name: a
    metric: t
    window: 10s
    op: ">"
    threshold: x
    channels: [nope]
  - name: b
    type: offline
    after: soon
    channels: [log]
channels:
  log:
    type: log
    extra: 1
`
	_, err := Parse("r.yaml", []byte(file), lookup)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("Parse = %v", err)
	}
	var lines []int
	for _, p := range perr.Problems {
		lines = append(lines, p.Line)
	}
	want := []int{6, 7, 10, 15}
	if len(lines) != len(want) {
		t.Fatalf("problems on lines %v, want %v:\n%v", lines, want, err)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Fatalf("problems on lines %v, want %v:\n%v", lines, want, err)
		}
	}
}

func TestParseRefusesHugeAndBinaryFiles(t *testing.T) {
	if _, err := Parse("r", []byte(strings.Repeat("#", MaxFileBytes+1)), lookup); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("huge file: %v", err)
	}
	if _, err := Parse("r", []byte("rules: []\n\xff"), lookup); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("binary file: %v", err)
	}
}

func TestEmptyRulesIsValid(t *testing.T) {
	set, err := Parse("r", []byte("rules: []\n"), lookup)
	if err != nil || len(set.Rules) != 0 {
		t.Fatalf("Parse(rules: []) = %v, %v", set, err)
	}
}

// YAML anchors and aliases work for repeated values.
func TestParseAliases(t *testing.T) {
	file := "channels:\n  log: {type: log}\nrules:\n  - name: a\n    type: offline\n    after: &t 30s\n    channels: &c [log]\n  - name: b\n    type: offline\n    repeat: *t\n    after: *t\n    channels: *c\n"
	set, err := Parse("r", []byte(file), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if set.Rule("b").After != 30*time.Second || set.Rule("b").Channels[0] != "log" {
		t.Fatalf("b = %+v", set.Rule("b"))
	}
}

func TestRuleSemantics(t *testing.T) {
	r := Rule{Op: Above, Threshold: 40, Clear: 35, HasClear: true, Site: "ware*", Device: "wh-0[1-3]", Aggregate: "max"}
	for v, want := range map[float64][2]bool{41: {true, false}, 40: {false, false}, 37: {false, false}, 35: {false, false}, 34.9: {false, true}} {
		if r.Breaches(v) != want[0] || r.Clears(v) != want[1] {
			t.Errorf("v=%v: breaches %v clears %v, want %v", v, r.Breaches(v), r.Clears(v), want)
		}
	}
	r2 := Rule{Op: AtMost, Threshold: 5}
	if !r2.Breaches(5) || r2.Clears(5) || !r2.Clears(5.1) {
		t.Error("<= without clear")
	}
	r3 := Rule{Op: Below, Threshold: 5, Clear: 8, HasClear: true}
	if !r3.Breaches(4) || r3.Clears(7) || r3.Clears(8) || !r3.Clears(8.5) {
		t.Error("< with clear")
	}
	if !r.Matches("warehouse", "wh-02") || r.Matches("warehouse", "wh-04") || r.Matches("lab", "wh-01") {
		t.Error("Matches")
	}
	all := Rule{Site: "*", Device: "*"}
	if !all.Matches("a", "b") {
		t.Error("* does not match")
	}
	s := reading.Stats{Count: 3, Sum: 6, Min: 1, Max: 3, Mean: 2, First: 1.5, Last: 2.5}
	for agg, want := range map[string]float64{"mean": 2, "min": 1, "max": 3, "count": 3, "sum": 6, "first": 1.5, "last": 2.5} {
		r := Rule{Aggregate: agg}
		if got := r.Value(s); got != want {
			t.Errorf("Value(%s) = %v, want %v", agg, got, want)
		}
	}
}
