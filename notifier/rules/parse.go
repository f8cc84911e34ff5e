package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/mail"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// The fields each part of the file may have. A field that is not listed is
// refused: a typo (threshhold) must not silently become a rule without a
// threshold.
var (
	topFields       = []string{"channels", "rules"}
	ruleFields      = []string{"name", "type", "site", "device", "metric", "aggregate", "window", "op", "threshold", "clear", "for", "after", "severity", "repeat", "channels"}
	thresholdFields = []string{"metric", "aggregate", "window", "op", "threshold", "clear", "for"}
	offlineFields   = []string{"after"}
	channelFields   = map[ChannelType][]string{
		Webhook: {"type", "url_env", "timeout", "retry_initial", "retry_max", "template"},
		Slack:   {"type", "url_env", "timeout", "retry_initial", "retry_max", "template"},
		Email:   {"type", "addr", "from", "to", "username", "password_env", "starttls", "timeout", "retry_initial", "retry_max", "template"},
		Log:     {"type", "template"},
		Alertmanager: {"type", "url", "username", "password_env", "password_file", "bearer_token_env", "bearer_token_file",
			"labels", "resend", "dashboard_url", "timeout", "retry_initial", "retry_max", "template"},
	}
	// secretFields are refused outright, with the field to use instead.
	secretFields = map[string]string{"url": "url_env", "password": "password_env", "bearer_token": "bearer_token_env"}
	// channelTypes in the order messages list them.
	channelTypes = []string{string(Webhook), string(Slack), string(Email), string(Log), string(Alertmanager)}
	// amLabels are the labels every alert sent to Alertmanager has; a
	// channel's `labels` may not replace them.
	amLabels = []string{"alertname", "rule", "site", "device", "metric", "severity"}
	// labelName is a Prometheus label name (the classic character set, which
	// every Alertmanager and receiver accepts).
	labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse validates one version of the rules file and returns its rules. file
// names the file in messages; env looks up the environment variables that
// hold the channels' secrets (os.LookupEnv in the service). A file with any
// problem is refused as a whole, with an *Error listing every problem by line
// and field.
func Parse(file string, data []byte, env func(string) (string, bool)) (*Set, error) {
	fail := func(ps ...Problem) (*Set, error) { return nil, &Error{File: file, Problems: ps} }
	if len(data) > MaxFileBytes {
		return fail(Problem{Msg: fmt.Sprintf("the file is %d bytes; at most %d are accepted", len(data), MaxFileBytes)})
	}
	if !utf8.Valid(data) {
		return fail(Problem{Msg: "the file is not UTF-8 text"})
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fail(syntaxProblem(err))
	}
	if len(doc.Content) == 0 {
		return fail(Problem{Msg: "the file is empty (write `rules: []` for no rules)"})
	}
	p := &parser{env: env}
	root := doc.Content[0]
	top := p.fields(root, "", topFields)
	set := &Set{Channels: map[string]Channel{}}
	if n, ok := top["channels"]; ok {
		p.channels(n, set)
	}
	if n, ok := top["rules"]; ok {
		p.rules(n, set)
	} else if root.Kind == yaml.MappingNode {
		p.add(root, "rules", "missing (write `rules: []` for no rules)")
	}
	if len(p.problems) > 0 {
		slices.SortStableFunc(p.problems, func(a, b Problem) int { return a.Line - b.Line })
		return fail(p.problems...)
	}
	sum := sha256.Sum256(data)
	set.Version = hex.EncodeToString(sum[:6])
	return set, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns the YAML parser's "yaml: line 3: ..." into a Problem.
func syntaxProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Msg: "YAML syntax: " + m[2]}
	}
	// The parser leaves the line out when it is the first one.
	return Problem{Line: 1, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

type parser struct {
	problems []Problem
	env      func(string) (string, bool)
}

func (p *parser) add(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.problems = append(p.problems, Problem{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// resolve follows a YAML alias (*name) to its anchor.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// fields returns the values of a mapping by key, refusing keys not in
// allowed and keys given twice.
func (p *parser) fields(n *yaml.Node, path string, allowed []string) map[string]*yaml.Node {
	n = resolve(n)
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		field := path
		if field == "" {
			field = "(top level)"
		}
		p.add(n, field, "want a mapping of `key: value` lines, got %s", kindName(n))
		return out
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		key := k.Value
		if !slices.Contains(allowed, key) {
			if instead, ok := secretFields[key]; ok && slices.Contains(allowed, instead) {
				p.add(k, join(path, key), "secrets are never written in the rules file: put the value in an environment variable and name it with %s", instead)
				continue
			}
			p.add(k, join(path, key), "unknown field (want one of %s)", strings.Join(allowed, ", "))
			continue
		}
		if line, dup := first[key]; dup {
			p.add(k, join(path, key), "given twice (first on line %d)", line)
			continue
		}
		first[key] = k.Line
		out[key] = v
	}
	return out
}

// str reads a non-empty scalar.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
		p.add(n, field, "want a value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// name reads a name that becomes a subject token or a KV key.
func (p *parser) name(n *yaml.Node, field string) (string, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	if !reading.ValidName(s) {
		p.add(n, field, "%q: want 1 to 64 of A-Z a-z 0-9 _ -", reading.Truncate(s, 80))
		return "", false
	}
	return s, true
}

func (p *parser) number(n *yaml.Node, field string) (float64, bool) {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		p.add(n, field, "want a number, got %s", kindName(n))
		return 0, false
	}
	var f float64
	if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.add(n, field, "want a finite number, got %q", n.Value)
		return 0, false
	}
	return f, true
}

func (p *parser) duration(n *yaml.Node, field string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.add(n, field, "want a duration such as 30s or 5m, got %s", kindName(n))
		return 0, false
	}
	if n.Value == "0" {
		return 0, true
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.add(n, field, "want a duration with its unit, such as 30s or 5m, got %q", reading.Truncate(n.Value, 40))
		return 0, false
	}
	if d < 0 {
		p.add(n, field, "must not be negative")
		return 0, false
	}
	return d, true
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.add(n, field, "want true or false, got %s", kindName(n))
		return false, false
	}
	var b bool
	_ = n.Decode(&b)
	return b, true
}

func (p *parser) list(n *yaml.Node, field string) []*yaml.Node {
	if n.Kind != yaml.SequenceNode {
		p.add(n, field, "want a list such as [a, b], got %s", kindName(n))
		return nil
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = resolve(c)
	}
	return out
}

func (p *parser) oneOf(n *yaml.Node, field string, allowed []string) (string, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	if !slices.Contains(allowed, s) {
		p.add(n, field, "%q: want one of %s", reading.Truncate(s, 40), strings.Join(allowed, ", "))
		return "", false
	}
	return s, true
}

// pattern reads a site or device selector: a name, or a path.Match glob over
// name characters.
func (p *parser) pattern(n *yaml.Node, field string) (string, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	valid := len(s) <= 256
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_-*?[]^!", c)) {
			valid = false
		}
	}
	if _, err := path.Match(s, ""); err != nil {
		valid = false
	}
	if !valid {
		p.add(n, field, "%q: want a name, or a glob of name characters with * ? [...] (\"*\" for every one)", reading.Truncate(s, 80))
		return "", false
	}
	return s, true
}

// secret reads the environment variable an *_env field names.
func (p *parser) secret(n *yaml.Node, field string) (string, bool) {
	name, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	if !envName.MatchString(name) {
		p.add(n, field, "%q: want the name of an environment variable, such as EDGEFLOW_WEBHOOK_OPS_URL", reading.Truncate(name, 80))
		return "", false
	}
	v, set := "", false
	if p.env != nil {
		v, set = p.env(name)
	}
	if !set || v == "" {
		p.add(n, field, "environment variable %s is not set", name)
		return "", false
	}
	return v, true
}

func (p *parser) channels(n *yaml.Node, set *Set) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.add(n, "channels", "want a mapping of channel names to channels, got %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		field := "channels." + k.Value
		name, ok := p.name(k, field)
		if !ok {
			continue
		}
		if prev, dup := set.Channels[name]; dup {
			p.add(k, field, "channel defined twice (first on line %d)", prev.Line)
			continue
		}
		if c, ok := p.channel(v, name, field); ok {
			c.Line = k.Line
			set.Channels[name] = c
		} else {
			// Known but invalid: rules naming it are not reported again.
			set.Channels[name] = Channel{Name: name, Line: k.Line}
		}
	}
}

func (p *parser) channel(n *yaml.Node, name, path string) (Channel, bool) {
	c := Channel{Name: name, Timeout: DefaultTimeout, RetryInitial: DefaultRetryInitial, RetryMax: DefaultRetryMax}
	if n.Kind != yaml.MappingNode {
		p.add(n, path, "want a mapping with at least `type:`, got %s", kindName(n))
		return c, false
	}
	before := len(p.problems)
	// The type decides which other fields are allowed.
	var typ *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			typ = resolve(n.Content[i+1])
		}
	}
	types := channelTypes
	if typ == nil {
		p.add(n, join(path, "type"), "missing (want one of %s)", strings.Join(types, ", "))
		return c, false
	}
	t, ok := p.oneOf(typ, join(path, "type"), types)
	if !ok {
		return c, false
	}
	c.Type = ChannelType(t)
	f := p.fields(n, path, channelFields[c.Type])
	if v, ok := f["timeout"]; ok {
		if d, ok := p.duration(v, join(path, "timeout")); ok {
			if d < 100*time.Millisecond || d > 5*time.Minute {
				p.add(v, join(path, "timeout"), "must be between 100ms and 5m")
			}
			c.Timeout = d
		}
	}
	if v, ok := f["retry_initial"]; ok {
		if d, ok := p.duration(v, join(path, "retry_initial")); ok {
			if d < 10*time.Millisecond {
				p.add(v, join(path, "retry_initial"), "must be at least 10ms")
			}
			c.RetryInitial = d
		}
	}
	if v, ok := f["retry_max"]; ok {
		if d, ok := p.duration(v, join(path, "retry_max")); ok {
			if d > 24*time.Hour {
				p.add(v, join(path, "retry_max"), "must be at most 24h")
			}
			c.RetryMax = d
		}
	}
	if c.RetryMax < c.RetryInitial {
		p.add(n, join(path, "retry_max"), "%s is shorter than retry_initial %s", c.RetryMax, c.RetryInitial)
	}
	switch c.Type {
	case Webhook, Slack:
		v, ok := f["url_env"]
		if !ok {
			p.add(n, join(path, "url_env"), "missing: name the environment variable that holds the URL")
			break
		}
		c.URLEnv = v.Value
		if u, ok := p.secret(v, join(path, "url_env")); ok {
			parsed, err := url.Parse(u)
			if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
				// The value is a secret: never quoted.
				p.add(v, join(path, "url_env"), "environment variable %s does not hold an http(s) URL", v.Value)
			}
			c.URL = u
		}
	case Email:
		p.smtp(n, f, path, &c.SMTP)
	case Alertmanager:
		p.alertmanager(n, f, path, &c.Alertmanager)
	}
	if v, ok := f["template"]; ok {
		if text, ok := p.str(v, join(path, "template")); ok {
			t, err := ParseTemplate(name, text)
			if err != nil {
				p.add(v, join(path, "template"), "%s", TemplateError(err))
			}
			c.Template, c.TemplateText = t, text
		}
	}
	return c, len(p.problems) == before
}

func (p *parser) alertmanager(n *yaml.Node, f map[string]*yaml.Node, path string, a *AlertmanagerTarget) {
	a.Resend = DefaultResend
	if v, ok := f["url"]; !ok {
		p.add(n, join(path, "url"), "missing: the Alertmanager's base URL, such as http://alertmanager:9093 (a list for an HA cluster)")
	} else {
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			if items = p.list(v, join(path, "url")); len(items) == 0 {
				p.add(v, join(path, "url"), "want at least one URL")
			}
		}
		for i, it := range items {
			field := join(path, "url")
			if v.Kind == yaml.SequenceNode {
				field = fmt.Sprintf("%s.url[%d]", path, i)
			}
			u, ok := p.str(it, field)
			if !ok {
				continue
			}
			parsed, err := url.Parse(u)
			switch {
			case strings.Contains(u, "@") || (err == nil && parsed.User != nil):
				// Not quoted: it may hold a password.
				p.add(it, field, "credentials in the URL: use username with password_env or password_file")
			case err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "":
				p.add(it, field, "%q: want an http(s) URL such as http://alertmanager:9093", reading.Truncate(u, 80))
			case parsed.RawQuery != "" || parsed.Fragment != "":
				p.add(it, field, "%q: want the base URL only, without ?query or #fragment (/api/v2/alerts is added)", reading.Truncate(u, 80))
			case slices.Contains(a.URLs, strings.TrimRight(u, "/")):
				p.add(it, field, "%q listed twice", reading.Truncate(u, 80))
			default:
				a.URLs = append(a.URLs, strings.TrimRight(u, "/"))
			}
		}
	}
	if v, ok := f["username"]; ok {
		a.Username, _ = p.str(v, join(path, "username"))
	}
	a.Password = p.secretOf(n, f, path, "password")
	a.BearerToken = p.secretOf(n, f, path, "bearer_token")
	hasUser := f["username"] != nil
	hasPassword := f["password_env"] != nil || f["password_file"] != nil
	hasToken := f["bearer_token_env"] != nil || f["bearer_token_file"] != nil
	switch {
	case hasUser && !hasPassword:
		p.add(n, join(path, "password_env"), "missing: a username needs password_env or password_file")
	case hasPassword && !hasUser:
		p.add(n, join(path, "username"), "missing: a password needs its username")
	}
	if hasUser && hasToken {
		p.add(n, join(path, "bearer_token_env"), "give either username and password (basic authentication) or a bearer token, not both")
	}
	if v, ok := f["labels"]; ok {
		p.labels(v, join(path, "labels"), a)
	}
	if v, ok := f["resend"]; ok {
		if d, ok := p.duration(v, join(path, "resend")); ok {
			if d != 0 && (d < time.Second || d > time.Hour) {
				p.add(v, join(path, "resend"), "must be 0 (never) or between 1s and 1h")
			}
			a.Resend = d
		}
	}
	if v, ok := f["dashboard_url"]; ok {
		if u, ok := p.str(v, join(path, "dashboard_url")); ok {
			parsed, err := url.Parse(u)
			if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || parsed.User != nil ||
				parsed.RawQuery != "" || parsed.Fragment != "" {
				p.add(v, join(path, "dashboard_url"), "want the dashboard's http(s) base URL, such as https://edgeflow.example.com")
			}
			a.DashboardURL = strings.TrimRight(u, "/")
		}
	}
}

// secretOf reads a secret given as <field>_env or <field>_file (not both).
func (p *parser) secretOf(n *yaml.Node, f map[string]*yaml.Node, path, field string) Secret {
	env, file := f[field+"_env"], f[field+"_file"]
	var s Secret
	switch {
	case env != nil && file != nil:
		p.add(file, join(path, field+"_file"), "give %s_env or %s_file, not both", field, field)
	case env != nil:
		s.Env = env.Value
		s.Value, _ = p.secret(env, join(path, field+"_env"))
	case file != nil:
		name, ok := p.str(file, join(path, field+"_file"))
		if !ok {
			break
		}
		if !filepath.IsAbs(name) {
			p.add(file, join(path, field+"_file"), "%q: want an absolute path", reading.Truncate(name, 80))
			break
		}
		// Its content is a secret: never quoted, and neither is the error
		// that could quote it.
		if _, err := readSecretFile(name); err != nil {
			p.add(file, join(path, field+"_file"), "cannot read the secret: %s", fileError(err))
			break
		}
		s.File = name
	}
	return s
}

// fileError describes why a file could not be read without quoting it.
func fileError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

// labels reads an alertmanager channel's extra labels.
func (p *parser) labels(n *yaml.Node, field string, a *AlertmanagerTarget) {
	if n.Kind != yaml.MappingNode {
		p.add(n, field, "want a mapping of label names to values, got %s", kindName(n))
		return
	}
	a.Labels = map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		name := k.Value
		lf := join(field, name)
		switch {
		case !labelName.MatchString(name) || strings.HasPrefix(name, "__"):
			p.add(k, lf, "%q: want a label name of A-Z a-z 0-9 _, not starting with a digit or __", reading.Truncate(name, 80))
			continue
		case slices.Contains(amLabels, name):
			p.add(k, lf, "%s is set by the notifier (labels %s)", name, strings.Join(amLabels, ", "))
			continue
		}
		if _, dup := a.Labels[name]; dup {
			p.add(k, lf, "given twice")
			continue
		}
		if value, ok := p.str(v, lf); ok {
			a.Labels[name] = value
		}
	}
}

func (p *parser) smtp(n *yaml.Node, f map[string]*yaml.Node, path string, s *SMTP) {
	if v, ok := f["addr"]; !ok {
		p.add(n, join(path, "addr"), "missing: the mail server as host:port")
	} else if a, ok := p.str(v, join(path, "addr")); ok {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			p.add(v, join(path, "addr"), "%q: want host:port, such as smtp.example.com:587", reading.Truncate(a, 80))
		}
		s.Addr = a
	}
	if v, ok := f["from"]; !ok {
		p.add(n, join(path, "from"), "missing: the sender's address")
	} else if a, ok := p.str(v, join(path, "from")); ok {
		s.From = p.address(v, join(path, "from"), a)
	}
	if v, ok := f["to"]; !ok {
		p.add(n, join(path, "to"), "missing: a list of recipients")
	} else {
		items := p.list(v, join(path, "to"))
		if items != nil && len(items) == 0 {
			p.add(v, join(path, "to"), "want at least one recipient")
		}
		for i, it := range items {
			field := fmt.Sprintf("%s.to[%d]", path, i)
			if a, ok := p.str(it, field); ok {
				if addr := p.address(it, field, a); addr != "" {
					s.To = append(s.To, addr)
				}
			}
		}
	}
	if v, ok := f["username"]; ok {
		s.Username, _ = p.str(v, join(path, "username"))
	}
	if v, ok := f["password_env"]; ok {
		s.PasswordEnv = v.Value
		s.Password, _ = p.secret(v, join(path, "password_env"))
	} else if s.Username != "" {
		p.add(n, join(path, "password_env"), "missing: a username needs the environment variable that holds its password")
	}
	if v, ok := f["starttls"]; ok {
		s.StartTLS, _ = p.boolean(v, join(path, "starttls"))
	}
}

// address checks one e-mail address and returns its bare form, or "".
func (p *parser) address(n *yaml.Node, field, s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil || strings.ContainsAny(a.Address, "\r\n") {
		p.add(n, field, "%q: want an e-mail address", reading.Truncate(s, 80))
		return ""
	}
	return a.Address
}

func (p *parser) rules(n *yaml.Node, set *Set) {
	items := p.list(n, "rules")
	names := map[string]int{}
	for i, it := range items {
		path := fmt.Sprintf("rules[%d]", i)
		r, ok := p.rule(it, path, set)
		if !ok {
			continue
		}
		if line, dup := names[r.Name]; dup {
			p.add(it, join(path, "name"), "%q is already the name of the rule on line %d", r.Name, line)
			continue
		}
		names[r.Name] = r.Line
		set.Rules = append(set.Rules, r)
	}
}

func (p *parser) rule(n *yaml.Node, path string, set *Set) (Rule, bool) {
	r := Rule{Kind: Threshold, Site: anyName, Device: anyName, Aggregate: DefaultAggregate, Severity: DefaultSeverity, Line: n.Line}
	before := len(p.problems)
	f := p.fields(n, path, ruleFields)
	if n.Kind != yaml.MappingNode {
		return r, false
	}
	if v, ok := f["name"]; ok {
		r.Name, _ = p.name(v, join(path, "name"))
	} else {
		p.add(n, join(path, "name"), "missing: every rule needs a name (it names the alert)")
	}
	if v, ok := f["type"]; ok {
		t, ok := p.oneOf(v, join(path, "type"), []string{string(Threshold), string(Offline)})
		if !ok {
			return r, false // which fields apply depends on the type
		}
		r.Kind = Kind(t)
	}
	if v, ok := f["site"]; ok {
		r.Site, _ = p.pattern(v, join(path, "site"))
	}
	if v, ok := f["device"]; ok {
		r.Device, _ = p.pattern(v, join(path, "device"))
	}
	// Fields of the other kind are mistakes, not options.
	other, otherKind := offlineFields, Offline
	if r.Kind == Offline {
		other, otherKind = thresholdFields, Threshold
	}
	for _, k := range other {
		if v, ok := f[k]; ok {
			p.add(v, join(path, k), "applies only to %s rules; this rule is type %s", otherKind, r.Kind)
		}
	}
	if r.Kind == Threshold {
		p.threshold(n, f, path, &r)
	} else {
		if v, ok := f["after"]; !ok {
			p.add(n, join(path, "after"), "missing: how long a device may be silent before it counts as offline")
		} else if d, ok := p.duration(v, join(path, "after")); ok {
			if d < time.Second {
				p.add(v, join(path, "after"), "must be at least 1s")
			}
			r.After = d
		}
	}
	if v, ok := f["severity"]; ok {
		r.Severity, _ = p.oneOf(v, join(path, "severity"), Severities)
	}
	if v, ok := f["repeat"]; ok {
		if d, ok := p.duration(v, join(path, "repeat")); ok {
			if d != 0 && d < time.Second {
				p.add(v, join(path, "repeat"), "must be 0 (never) or at least 1s")
			}
			r.Repeat = d
		}
	}
	if v, ok := f["channels"]; !ok {
		p.add(n, join(path, "channels"), "missing: the channels to notify, e.g. [log]")
	} else {
		items := p.list(v, join(path, "channels"))
		if items != nil && len(items) == 0 {
			p.add(v, join(path, "channels"), "want at least one channel")
		}
		for i, it := range items {
			field := fmt.Sprintf("%s.channels[%d]", path, i)
			name, ok := p.str(it, field)
			if !ok {
				continue
			}
			if _, ok := set.Channels[name]; !ok {
				known := make([]string, 0, len(set.Channels))
				for k := range set.Channels {
					known = append(known, k)
				}
				slices.Sort(known)
				p.add(it, field, "no channel %q in the channels section (defined: %s)", reading.Truncate(name, 80), strings.Join(known, ", "))
				continue
			}
			if slices.Contains(r.Channels, name) {
				p.add(it, field, "channel %q listed twice", name)
				continue
			}
			r.Channels = append(r.Channels, name)
		}
	}
	return r, len(p.problems) == before
}

func (p *parser) threshold(n *yaml.Node, f map[string]*yaml.Node, path string, r *Rule) {
	if v, ok := f["metric"]; !ok {
		p.add(n, join(path, "metric"), "missing: the metric to compare, e.g. temperature")
	} else {
		r.Metric, _ = p.name(v, join(path, "metric"))
	}
	if v, ok := f["aggregate"]; ok {
		r.Aggregate, _ = p.oneOf(v, join(path, "aggregate"), Aggregates)
	}
	if v, ok := f["window"]; !ok {
		p.add(n, join(path, "window"), "missing: the window length the processors aggregate over, e.g. 10s")
	} else if d, ok := p.duration(v, join(path, "window")); ok {
		if d < time.Millisecond || d%time.Millisecond != 0 {
			p.add(v, join(path, "window"), "want a whole number of milliseconds, at least 1ms")
		}
		r.Window = reading.WindowName(d)
	}
	if v, ok := f["op"]; !ok {
		p.add(n, join(path, "op"), `missing: the comparison, one of ">", ">=", "<", "<=" (in quotes)`)
	} else if v.Kind == yaml.ScalarNode && (v.Style&(yaml.LiteralStyle|yaml.FoldedStyle)) != 0 {
		// YAML reads a bare > as the start of a folded block.
		p.add(v, join(path, "op"), `write the comparison in quotes, such as op: ">" (a bare > starts a YAML block)`)
	} else if s, ok := p.oneOf(v, join(path, "op"), []string{">", ">=", "<", "<="}); ok {
		r.Op = Op(s)
	}
	thresholdOK := false
	if v, ok := f["threshold"]; !ok {
		p.add(n, join(path, "threshold"), "missing: the value to compare with")
	} else {
		r.Threshold, thresholdOK = p.number(v, join(path, "threshold"))
	}
	if v, ok := f["clear"]; ok {
		if c, ok := p.number(v, join(path, "clear")); ok {
			r.Clear, r.HasClear = c, true
			switch {
			case !thresholdOK || r.Op == "":
				// Compared once the threshold and op are valid.
			case (r.Op == Above || r.Op == AtLeast) && c > r.Threshold:
				p.add(v, join(path, "clear"), "%v is above the threshold %v: with op %q the alert clears when the value falls below it", c, r.Threshold, r.Op)
			case (r.Op == Below || r.Op == AtMost) && c < r.Threshold:
				p.add(v, join(path, "clear"), "%v is below the threshold %v: with op %q the alert clears when the value rises above it", c, r.Threshold, r.Op)
			}
		}
	}
	if v, ok := f["for"]; ok {
		r.For, _ = p.duration(v, join(path, "for"))
	}
}
