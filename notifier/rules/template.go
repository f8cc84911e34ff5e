package rules

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// A channel's `template` is a Go text/template that writes the summary of
// its notifications (the Slack text, the mail's subject, the webhook's and
// the log line's summary, Alertmanager's summary annotation) from the
// fields of TemplateData. Without one the summary is the notifier's own
// line (.Summary). A template that does not parse, or fails on any of a
// set of sample notifications, makes the rules file invalid, so a typo is
// found when the file is loaded, not when an alert fires.
const (
	// MaxTemplateBytes caps a template's text.
	MaxTemplateBytes = 4 << 10
	// MaxSummaryBytes caps what a template writes; longer is cut.
	MaxSummaryBytes = 2 << 10
)

// TemplateData is what a channel's template sees: one notification.
type TemplateData struct {
	ID       string // the notification's id, the same on every retry
	Rule     string
	Site     string
	Device   string
	State    string // firing or resolved
	Severity string // info, warning, critical
	// Value is the aggregate of a threshold rule (seconds of silence for an
	// offline rule), Threshold what it is compared with (the offline
	// rule's `after` in seconds).
	Value     float64
	Threshold float64
	// Since is when the condition began (firing) or ended (resolved), in
	// event time; At is when the notifier decided (wall clock).
	Since time.Time
	At    time.Time
	// Repeat marks a reminder of an alert that is still firing.
	Repeat bool
	Kind   string // threshold or offline
	// The comparison of a threshold rule (empty for an offline rule).
	Metric    string
	Aggregate string
	Window    string
	Op        string
	Clear     float64
	HasClear  bool
	Seq       uint64
	// Summary is the notifier's own line, the summary without a template.
	Summary string
}

// templateFuncs are the functions a template may call besides text/template's.
var templateFuncs = template.FuncMap{
	// num prints a number with at most two decimals, as the default summary does.
	"num": func(v float64) string {
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// templateSamples are the notifications a template is tried on when the
// rules are loaded: each state of each rule type.
var templateSamples = func() []TemplateData {
	at := time.Date(2026, 1, 2, 3, 4, 35, 0, time.UTC)
	hot := TemplateData{ID: "hot.site.dev.2", Rule: "hot", Site: "site", Device: "dev", State: "firing", Severity: "critical",
		Value: 42.5, Threshold: 40, Since: at.Add(-35 * time.Second), At: at, Kind: string(Threshold), Metric: "temperature",
		Aggregate: "mean", Window: "10s", Op: ">", Clear: 35, HasClear: true, Seq: 2,
		Summary: "[critical] hot firing: site/dev temperature mean over 10s is 42.5 (> 40)"}
	resolved := hot
	resolved.State, resolved.Value, resolved.Seq = "resolved", 30, 3
	resolved.Summary = "[critical] hot resolved: site/dev temperature mean over 10s is 30 (clears below 35)"
	repeat := hot
	repeat.Repeat, repeat.Seq = true, 3
	offline := TemplateData{ID: "gone.site.dev.1", Rule: "gone", Site: "site", Device: "dev", State: "firing", Severity: "warning",
		Value: 31.5, Threshold: 30, Since: at.Add(-31 * time.Second), At: at, Kind: string(Offline), Seq: 1,
		Summary: "[warning] gone firing: site/dev sent nothing for 31.5s (limit 30s)"}
	return []TemplateData{hot, resolved, repeat, offline}
}()

// ParseTemplate compiles a channel's template and tries it on sample
// notifications of every kind and state, so that a template which would
// fail on some alert (a field that does not exist, a function called with
// the wrong type) is refused now.
func ParseTemplate(name, text string) (*template.Template, error) {
	if len(text) > MaxTemplateBytes {
		return nil, fmt.Errorf("the template is %d bytes; at most %d are accepted", len(text), MaxTemplateBytes)
	}
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, err
	}
	if err := straight(t); err != nil {
		return nil, err
	}
	for _, d := range templateSamples {
		if _, err := RenderTemplate(t, d); err != nil {
			what := d.Kind + " " + d.State
			if d.Repeat {
				what = d.Kind + " repeat"
			}
			return nil, fmt.Errorf("fails on a%s %s notification: %w", article(what), what, err)
		}
	}
	return t, nil
}

// straight refuses the constructs that loop or recurse (range, and
// templates that call templates): a summary has nothing to iterate over,
// and without them a template runs in time bounded by its length, so no
// rules file can hang the loader or a delivery.
func straight(t *template.Template) error {
	if len(t.Templates()) > 1 {
		return errors.New("define and block are not supported in a channel template")
	}
	var walk func(n parse.Node) error
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return nil
			}
			for _, c := range n.Nodes {
				if err := walk(c); err != nil {
					return err
				}
			}
		case *parse.IfNode:
			return errors.Join(walk(n.List), walk(n.ElseList))
		case *parse.WithNode:
			return errors.Join(walk(n.List), walk(n.ElseList))
		case *parse.RangeNode:
			return fmt.Errorf("line %d of the template: range is not supported in a channel template", line(t, n))
		case *parse.TemplateNode:
			return fmt.Errorf("line %d of the template: template is not supported in a channel template", line(t, n))
		}
		return nil
	}
	if t.Tree == nil {
		return nil
	}
	return walk(t.Tree.Root)
}

func line(t *template.Template, n parse.Node) int {
	l, _ := t.Tree.ErrorContext(n)
	if _, after, ok := strings.Cut(l, ":"); ok {
		if num, _, ok := strings.Cut(after, ":"); ok {
			if v, err := strconv.Atoi(num); err == nil {
				return v
			}
		}
	}
	return 1
}

func article(word string) string {
	if strings.ContainsAny(word[:1], "aeiou") {
		return "n"
	}
	return ""
}

var (
	// "template: NAME:3:14: executing "NAME" at <.Rul>: ..."
	execError = regexp.MustCompile(`template: [^:]*:(\d+):(\d+): executing "[^"]*" at (<[^>]*>): `)
	// "template: NAME:3: ..."
	parseError = regexp.MustCompile(`template: [^:]*:(\d+): `)
)

// TemplateError says what is wrong with a template in the words of the
// rules file: where in the template, and for a field that does not exist,
// which ones do.
func TemplateError(err error) string {
	msg := execError.ReplaceAllString(err.Error(), "line $1, column $2 of the template, at $3: ")
	msg = parseError.ReplaceAllString(msg, "line $1 of the template: ")
	if strings.Contains(msg, "can't evaluate field") {
		msg = strings.Replace(msg, "in type rules.TemplateData", "(the fields are "+strings.Join(templateFields(), ", ")+")", 1)
	}
	return msg
}

// templateFields lists TemplateData's fields, as a template names them.
func templateFields() []string {
	t := reflect.TypeFor[TemplateData]()
	out := make([]string, t.NumField())
	for i := range out {
		out[i] = "." + t.Field(i).Name
	}
	return out
}

// RenderTemplate writes d with t, cut to MaxSummaryBytes. A template that
// writes only spaces yields "" (the caller then uses d.Summary).
func RenderTemplate(t *template.Template, d TemplateData) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&limitWriter{b: &b, n: MaxSummaryBytes + 1}, d); err != nil && !errors.Is(err, errLimit) {
		return "", err
	}
	return reading.Truncate(strings.TrimSpace(b.String()), MaxSummaryBytes), nil
}

var errLimit = fmt.Errorf("summary longer than %d bytes", MaxSummaryBytes)

// limitWriter stops a template that writes without end (a range over a
// long string, say) once it wrote n bytes.
type limitWriter struct {
	b *bytes.Buffer
	n int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > w.n {
		w.b.Write(p[:w.n-w.b.Len()])
		return 0, errLimit
	}
	return w.b.Write(p)
}
