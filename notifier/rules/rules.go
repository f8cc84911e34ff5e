// Package rules is the notifier's alert rules file: its format, its
// validation (every problem reported with its line and field), and the
// watcher that reloads it when it changes. The format is documented in the
// docs/alerting.md and by ../../rules.yaml.
package rules

import (
	"fmt"
	"os"
	"path"
	"strings"
	"text/template"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Kind is what a rule watches.
type Kind string

// Rule kinds.
const (
	// Threshold compares one aggregate of one metric in closed windows.
	Threshold Kind = "threshold"
	// Offline fires when a device has sent no data for a duration.
	Offline Kind = "offline"
)

// Op is a threshold comparison.
type Op string

// Comparisons.
const (
	Above   Op = ">"
	AtLeast Op = ">="
	Below   Op = "<"
	AtMost  Op = "<="
)

// Defaults of optional fields.
const (
	DefaultAggregate = "mean"
	DefaultSeverity  = "warning"
	// DefaultTimeout bounds one delivery attempt: long enough for a slow
	// webhook or mail server, short enough that a dead one is retried soon.
	DefaultTimeout = 10 * time.Second
	// DefaultRetryInitial and DefaultRetryMax bound the backoff between the
	// attempts of a failing delivery: a brief outage costs seconds, a long
	// one an attempt every 5 minutes.
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = 5 * time.Minute

	anyName = "*"
	// MaxFileBytes caps the rules file; a larger one is refused.
	MaxFileBytes = 1 << 20
)

// Severities a rule may have.
var Severities = []string{"info", "warning", "critical"}

// Aggregates a threshold rule may compare: the fields of reading.Stats.
var Aggregates = []string{"mean", "min", "max", "count", "sum", "first", "last"}

// Set is one valid version of the rules file.
type Set struct {
	Rules    []Rule
	Channels map[string]Channel
	// Version is a short hash of the file's content: it changes exactly when
	// the content does.
	Version string
}

// Rule is one alert rule. A rule applies to every device whose site and
// device names match its Site and Device patterns (path.Match globs; "*"
// matches every name).
type Rule struct {
	Name   string
	Kind   Kind
	Site   string
	Device string

	// Threshold rules.
	Metric    string
	Aggregate string // one of Aggregates
	Window    string // canonical window name (reading.WindowName), as on AGGREGATES
	Op        Op
	Threshold float64
	// Clear is the level at which a firing alert resolves (hysteresis); when
	// HasClear is false the alert resolves as soon as the comparison fails.
	Clear    float64
	HasClear bool
	// For is how long, in event time, the condition must hold before the
	// alert fires; 0 fires on the first breaching window.
	For time.Duration

	// Offline rules: the silence after which the device counts as offline.
	After time.Duration

	Severity string
	// Repeat is how often a firing alert is notified again; 0 never.
	Repeat   time.Duration
	Channels []string
	// Line is where the rule starts in the file.
	Line int
}

// Matches reports whether the rule applies to a device.
func (r *Rule) Matches(site, device string) bool {
	return match(r.Site, site) && match(r.Device, device)
}

func match(pattern, name string) bool {
	if pattern == anyName {
		return true
	}
	ok, err := path.Match(pattern, name)
	return ok && err == nil // patterns are validated on load
}

// Breaches reports whether v is beyond the threshold.
func (r *Rule) Breaches(v float64) bool {
	switch r.Op {
	case Above:
		return v > r.Threshold
	case AtLeast:
		return v >= r.Threshold
	case Below:
		return v < r.Threshold
	case AtMost:
		return v <= r.Threshold
	}
	return false
}

// Clears reports whether v ends a breach: back past the clear level when
// the rule has one (strictly: a value at the clear level keeps the alert),
// else as soon as the comparison fails. Between the clear level and the
// threshold an alert keeps its state, so a value hovering at the threshold
// does not flap.
func (r *Rule) Clears(v float64) bool {
	if !r.HasClear {
		return !r.Breaches(v)
	}
	if r.Op == Above || r.Op == AtLeast {
		return v < r.Clear
	}
	return v > r.Clear
}

// Value picks the rule's aggregate from a window's statistics.
func (r *Rule) Value(s reading.Stats) float64 {
	switch r.Aggregate {
	case "min":
		return s.Min
	case "max":
		return s.Max
	case "count":
		return float64(s.Count)
	case "sum":
		return s.Sum
	case "first":
		return s.First
	case "last":
		return s.Last
	}
	return s.Mean
}

// Rule returns the rule named name, or nil.
func (s *Set) Rule(name string) *Rule {
	for i := range s.Rules {
		if s.Rules[i].Name == name {
			return &s.Rules[i]
		}
	}
	return nil
}

// ChannelType is how a channel delivers.
type ChannelType string

// Channel types.
const (
	Webhook ChannelType = "webhook" // POST of the notification as JSON
	Slack   ChannelType = "slack"   // Slack-compatible incoming webhook: {"text": ...}
	Email   ChannelType = "smtp"    // e-mail over SMTP
	Log     ChannelType = "log"     // a JSON log line of the notifier
	// Alertmanager POSTs alerts to Prometheus Alertmanager's /api/v2/alerts
	// and re-sends them while they fire.
	Alertmanager ChannelType = "alertmanager"
)

// Defaults of an alertmanager channel.
const (
	// DefaultResend is how often a firing alert is sent again to
	// Alertmanager. Each send says the alert holds for ResendValidity
	// re-sends: an alert edgeflow stops sending (every replica down, the
	// rule removed) resolves itself there after that.
	DefaultResend  = time.Minute
	ResendValidity = 4
)

// Channel is where notifications go. Secrets (URLs, passwords) are read
// from the environment variables the file names; they are never in the
// file, and never logged.
type Channel struct {
	Name string
	Type ChannelType
	// URL of a webhook or Slack channel, read from URLEnv.
	URL    string
	URLEnv string
	SMTP   SMTP
	// Alertmanager is an alertmanager channel's target.
	Alertmanager AlertmanagerTarget
	// Template, when set, writes the summary of the channel's
	// notifications (TemplateData); TemplateText is its source.
	Template     *template.Template
	TemplateText string
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// RetryInitial and RetryMax bound the backoff between attempts of a
	// failing delivery; it is retried until it succeeds.
	RetryInitial time.Duration
	RetryMax     time.Duration
	Line         int
}

// SMTP is an e-mail channel's server and envelope.
type SMTP struct {
	Addr     string // host:port
	From     string
	To       []string
	Username string
	// Password is read from PasswordEnv.
	Password    string
	PasswordEnv string
	// StartTLS requires STARTTLS; without it STARTTLS is used when the
	// server offers it.
	StartTLS bool
}

// AlertmanagerTarget is where an alertmanager channel sends, and how.
type AlertmanagerTarget struct {
	// URLs are the base URLs of the Alertmanagers (…/api/v2/alerts is
	// added). An HA cluster is listed whole: every alert goes to each, as
	// Prometheus does, and counts as delivered once one accepted it.
	URLs []string
	// Username and Password are HTTP basic authentication; BearerToken an
	// Authorization: Bearer header. At most one of the two.
	Username    string
	Password    Secret
	BearerToken Secret
	// Labels are added to every alert's labels (e.g. cluster: edge-1).
	Labels map[string]string
	// Resend is how often a firing alert is sent again; 0 never (then
	// Alertmanager resolves it after its resolve_timeout).
	Resend time.Duration
	// DashboardURL, when set, is the edgeflow dashboard: each alert's
	// generatorURL links to its device's page there.
	DashboardURL string
}

// Secret is a credential read from an environment variable (at load) or a
// file (at load, to check it, and again at every use, so a rotated file
// such as a mounted Kubernetes Secret applies without a reload).
type Secret struct {
	Value string
	Env   string // the variable it was read from
	File  string // the file it is read from
}

// Set reports whether the secret is configured.
func (s Secret) Set() bool { return s.Value != "" || s.File != "" }

// Get returns the secret's current value.
func (s Secret) Get() (string, error) {
	if s.File == "" {
		return s.Value, nil
	}
	v, err := readSecretFile(s.File)
	if err != nil {
		return "", err
	}
	return v, nil
}

// maxSecretFile caps a secret file.
const maxSecretFile = 64 << 10

// readSecretFile reads a secret from a regular file, without its trailing
// newline.
func readSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxSecretFile {
		return "", fmt.Errorf("%s is %d bytes; a secret file may have at most %d", path, fi.Size(), maxSecretFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// Resend returns how often the alerts of r are re-sent while they fire, and
// to which channels: r's alertmanager channels, all at the shortest of
// their intervals. 0 and nil when it has none that re-sends.
func (s *Set) Resend(r *Rule) (time.Duration, []string) {
	var every time.Duration
	var to []string
	for _, name := range r.Channels {
		c, ok := s.Channels[name]
		if !ok || c.Type != Alertmanager || c.Alertmanager.Resend <= 0 {
			continue
		}
		to = append(to, name)
		if every == 0 || c.Alertmanager.Resend < every {
			every = c.Alertmanager.Resend
		}
	}
	return every, to
}

// Reminded returns the channels of r that its `repeat` reminders go to:
// all but alertmanager channels, where Alertmanager repeats notifications
// itself (its repeat_interval).
func (s *Set) Reminded(r *Rule) []string {
	var to []string
	for _, name := range r.Channels {
		if s.Channels[name].Type != Alertmanager {
			to = append(to, name)
		}
	}
	return to
}
