package reading

// Subjects of the streams in docs/architecture.md. Every token passed in
// must already be a ValidName: these functions only join.

// TelemetrySubject is where ingest publishes one reading.
func TelemetrySubject(site, device string) string { return "telemetry." + site + "." + device }

// AggregateSubject is where a processor publishes a closed window.
func AggregateSubject(window, site, device string) string {
	return "aggregates." + window + "." + site + "." + device
}

// AlertSubject is where the notifier publishes an alert state change.
func AlertSubject(site, device, rule string) string {
	return "alerts." + site + "." + device + "." + rule
}

// DeadLetterSubject is where a service dead-letters what it rejected.
func DeadLetterSubject(service string) string { return "deadletter." + service }

// NotificationSubject is where notifications for a channel are queued (the
// NOTIFICATIONS stream).
func NotificationSubject(channel string) string { return "notifications." + channel }
