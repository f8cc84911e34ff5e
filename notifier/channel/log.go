package channel

import (
	"context"
	"log/slog"
	"text/template"

	"github.com/edgeflow/edgeflow/notifier/alert"
)

// Log writes the notification as one JSON log line of the notifier: warn
// while firing, info when resolved. It never fails.
type Log struct {
	Name     string
	Logger   *slog.Logger
	Template *template.Template // of the summary; nil: the notifier's
}

// Send logs n.
func (l *Log) Send(ctx context.Context, n alert.Notification) error {
	level := slog.LevelWarn
	if n.State == "resolved" {
		level = slog.LevelInfo
	}
	l.Logger.Log(ctx, level, "alert "+n.State, "channel", l.Name, "id", n.ID, "rule", n.Rule, "site", n.Site,
		"device", n.Device, "state", n.State, "repeat", n.Repeat, "severity", n.Severity, "value", n.Value,
		"threshold", n.Threshold, "since", n.Since, "summary", Summary(l.Template, n))
	return nil
}
