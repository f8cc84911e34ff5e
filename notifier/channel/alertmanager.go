package channel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// AlertmanagerPath is where an Alertmanager takes alerts, after its base URL.
const AlertmanagerPath = "/api/v2/alerts"

// Alertmanager POSTs each notification as one alert to Prometheus
// Alertmanager's API (POST /api/v2/alerts, a JSON array of postable
// alerts), which then groups, silences, inhibits and routes it to its own
// receivers. Its labels identify the alert (AlertmanagerAlert); a firing
// alert is sent again every Target.Resend (the engine queues the re-sends)
// and says it holds until ResendValidity re-sends from now, so
// Alertmanager resolves it by itself if edgeflow stops sending; a resolved
// one is sent with endsAt, when it resolved.
//
// With several URLs (an Alertmanager HA cluster, whose members do not share
// alerts) each gets the alert, at once, and one that accepted it is a
// delivery: the others are logged, and hear of the alert at its next
// re-send. A 4xx answer from all of them is ErrRejected: the alert
// itself is refused, and retrying it would not help.
type Alertmanager struct {
	Name     string
	Target   rules.AlertmanagerTarget
	Client   *http.Client
	Template *template.Template // of the summary annotation; nil: the notifier's
	Log      *slog.Logger
	Now      func() time.Time
}

// PostableAlert is one alert of Alertmanager's POST /api/v2/alerts.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// AlertmanagerAlert is the alert that n is in Alertmanager, at now.
//
// Labels (what Alertmanager identifies, groups, silences and routes by;
// the same for every notification of one alert): alertname and rule (the
// rule's name), site, device, metric (threshold rules), severity, and the
// channel's own labels. Annotations: summary (the channel's template, or
// the notifier's line), value and threshold (as the summary prints them),
// and description, the notifier's line when a template wrote the summary.
//
// Firing: startsAt is when the condition began (event time, never after
// now), endsAt now + ResendValidity × Resend (none when re-sends are off:
// Alertmanager's resolve_timeout then applies). Resolved: startsAt and
// endsAt are when the notifier resolved it (wall clock; Alertmanager keeps
// the start it knows).
func AlertmanagerAlert(t rules.AlertmanagerTarget, tmpl *template.Template, n alert.Notification, now time.Time) PostableAlert {
	labels := make(map[string]string, len(t.Labels)+6)
	for k, v := range t.Labels {
		labels[k] = v
	}
	labels["alertname"] = n.Rule
	labels["rule"] = n.Rule
	labels["site"] = n.Site
	labels["device"] = n.Device
	labels["severity"] = n.Severity
	if n.Metric != "" {
		labels["metric"] = n.Metric
	}
	summary := Summary(tmpl, n)
	a := PostableAlert{
		Labels: labels,
		Annotations: map[string]string{
			"summary":   summary,
			"value":     number(n.Value),
			"threshold": number(n.Threshold),
		},
	}
	if summary != n.Summary {
		a.Annotations["description"] = n.Summary
	}
	if t.DashboardURL != "" {
		a.GeneratorURL = t.DashboardURL + "/#/device/" + url.PathEscape(n.Site) + "/" + url.PathEscape(n.Device)
	}
	if n.State == string(alert.Resolved) {
		end := n.At
		if end.IsZero() || end.After(now) {
			end = now
		}
		a.StartsAt, a.EndsAt = end, end
		return a
	}
	a.StartsAt = n.Since
	if a.StartsAt.IsZero() || a.StartsAt.After(now) {
		a.StartsAt = now // a device clock ahead of ours
	}
	if t.Resend > 0 {
		a.EndsAt = now.Add(rules.ResendValidity * t.Resend)
	}
	return a
}

// number prints a value as the summary does: at most two decimals.
func number(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// Send makes one attempt: the alert to every Alertmanager at once.
func (a *Alertmanager) Send(ctx context.Context, n alert.Notification) error {
	body, err := json.Marshal([]PostableAlert{AlertmanagerAlert(a.Target, a.Template, n, a.Now())})
	if err != nil {
		return fmt.Errorf("encode alert %s: %w", n.ID, err)
	}
	auth, err := a.authorization()
	if err != nil {
		return err
	}
	errs := make([]error, len(a.Target.URLs))
	var wg sync.WaitGroup
	for i, base := range a.Target.URLs {
		wg.Go(func() { errs[i] = a.post(ctx, base, auth, body, n.ID) })
	}
	wg.Wait()
	ok, rejected := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrRejected):
			rejected++
		}
	}
	if ok > 0 {
		for _, err := range errs {
			if err != nil {
				a.Log.Warn("alertmanager did not take the alert; the others did, and it gets the next re-send",
					"channel", a.Name, "id", n.ID, "err", err)
			}
		}
		return nil
	}
	err = errors.Join(errs...)
	if rejected == len(errs) {
		return err // every one wraps ErrRejected
	}
	// Some failed otherwise (down, 5xx): worth retrying. The error must not
	// say "rejected" then.
	var retry []error
	for _, e := range errs {
		if !errors.Is(e, ErrRejected) {
			retry = append(retry, e)
		}
	}
	return errors.Join(retry...)
}

// authorization is the Authorization header of the attempt, "" for none.
func (a *Alertmanager) authorization() (string, error) {
	switch {
	case a.Target.BearerToken.Set():
		token, err := a.Target.BearerToken.Get()
		if err != nil {
			return "", fmt.Errorf("alertmanager bearer token: %w", err)
		}
		return "Bearer " + token, nil
	case a.Target.Username != "":
		password, err := a.Target.Password.Get()
		if err != nil {
			return "", fmt.Errorf("alertmanager password: %w", err)
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(a.Target.Username, password)
		return req.Header.Get("Authorization"), nil
	}
	return "", nil
}

// post sends body to one Alertmanager. Its URL is not a secret (credentials
// in it are refused), so errors name it.
func (a *Alertmanager) post(ctx context.Context, base, auth string, body []byte, id string) error {
	target := base + AlertmanagerPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alertmanager %s: %w", base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderID, id)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("alertmanager %s: %w", base, err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyIn))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	quoted := reading.Truncate(strings.TrimSpace(string(reply)), 200)
	if permanent(resp.StatusCode) {
		return fmt.Errorf("alertmanager %s answered %s: %w: %q", base, resp.Status, ErrRejected, quoted)
	}
	return fmt.Errorf("alertmanager %s answered %s: %w: %q", base, resp.Status, ErrStatus, quoted)
}

// permanent reports whether an answer refuses the request itself: a 4xx,
// except those that say "later" (408 Request Timeout, 425 Too Early, 429
// Too Many Requests).
func permanent(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return status >= 400 && status <= 499
}
