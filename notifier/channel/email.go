package channel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strings"
	"text/template"
	"time"

	"github.com/edgeflow/edgeflow/notifier/alert"
	"github.com/edgeflow/edgeflow/notifier/rules"
)

// ErrNoStartTLS is returned when a channel requires STARTTLS and the server
// does not offer it: the password and the alert are not sent in clear.
var ErrNoStartTLS = errors.New("the mail server does not offer STARTTLS, which the channel requires")

// Email sends one plain-text mail per notification over SMTP (net/smtp),
// with STARTTLS when the server offers it (or always, when required) and
// PLAIN authentication when a username is set. The Message-ID derives from
// the notification's ID, so a mail delivered twice (at least once) can be
// recognised.
type Email struct {
	SMTP     rules.SMTP
	Template *template.Template // of the summary (subject); nil: the notifier's
}

// Send makes one attempt. The whole conversation is bounded by ctx.
func (e *Email) Send(ctx context.Context, n alert.Notification) error {
	host, _, err := net.SplitHostPort(e.SMTP.Addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", e.SMTP.Addr, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.SMTP.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp %s: greeting: %w", e.SMTP.Addr, err)
	}
	defer c.Close()
	if err := c.Hello("edgeflow-notifier"); err != nil {
		return fmt.Errorf("smtp %s: EHLO: %w", e.SMTP.Addr, err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp %s: STARTTLS: %w", e.SMTP.Addr, err)
		}
	} else if e.SMTP.StartTLS {
		return fmt.Errorf("smtp %s: %w", e.SMTP.Addr, ErrNoStartTLS)
	}
	if e.SMTP.Username != "" {
		// PlainAuth itself refuses to send the password unencrypted to
		// anything but localhost.
		if err := c.Auth(smtp.PlainAuth("", e.SMTP.Username, e.SMTP.Password, host)); err != nil {
			return fmt.Errorf("smtp %s: AUTH: %w", e.SMTP.Addr, err)
		}
	}
	if err := c.Mail(e.SMTP.From); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", e.SMTP.Addr, err)
	}
	for _, to := range e.SMTP.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp %s: RCPT TO %s: %w", e.SMTP.Addr, to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", e.SMTP.Addr, err)
	}
	n.Summary = Summary(e.Template, n)
	if _, err := w.Write(Message(e.SMTP, n, time.Now())); err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", e.SMTP.Addr, err)
	}
	// The server accepted the mail when it answers the final dot.
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp %s: end of DATA: %w", e.SMTP.Addr, err)
	}
	_ = c.Quit() // delivered already; a failed QUIT changes nothing
	return nil
}

// Message is the mail of a notification (lines end in \n; the SMTP DATA
// writer turns them into CRLF and escapes leading dots).
func Message(s rules.SMTP, n alert.Notification, now time.Time) []byte {
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, oneLine(v)) }
	header("From", s.From)
	header("To", strings.Join(s.To, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", oneLine(n.Summary)))
	header("Date", now.UTC().Format(time.RFC1123Z))
	header("Message-ID", "<"+n.ID+"@edgeflow-notifier>")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\n")
	b.WriteString(n.Summary + "\n\n")
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", k+":", oneLine(v))
		}
	}
	field("Rule", n.Rule)
	field("Device", n.Site+"/"+n.Device)
	field("State", n.State)
	field("Severity", n.Severity)
	field("Value", fmt.Sprint(n.Value))
	field("Threshold", fmt.Sprint(n.Threshold))
	field("Since", n.Since.UTC().Format(time.RFC3339))
	field("At", n.At.UTC().Format(time.RFC3339))
	field("ID", n.ID)
	return b.Bytes()
}

// oneLine keeps a header value on its line: no header injection.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}
