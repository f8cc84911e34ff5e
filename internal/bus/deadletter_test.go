package bus

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var rejectedAt = time.Date(2024, 11, 25, 18, 40, 0, 123456789, time.FixedZone("CET", 3600))

func TestDeadLetterMsgBody(t *testing.T) {
	tests := []struct {
		name     string
		size     int
		wantKept int
		wantSize string // Edgeflow-Original-Size; "" means absent
	}{
		{"empty", 0, 0, ""},
		{"small", 100, 100, ""},
		{"exactly the cap", MaxDeadLetterBody, MaxDeadLetterBody, ""},
		{"one byte over", MaxDeadLetterBody + 1, MaxDeadLetterBody, strconv.Itoa(MaxDeadLetterBody + 1)},
		{"hostile 4 MiB", 4 << 20, MaxDeadLetterBody, strconv.Itoa(4 << 20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := make([]byte, tt.size)
			for i := range body {
				body[i] = byte(i % 251)
			}
			m := DeadLetter{Service: "ingest", Reason: "too_large", Body: body}.Msg(rejectedAt)
			if m.Subject != "deadletter.ingest" {
				t.Fatalf("subject = %q", m.Subject)
			}
			if len(m.Data) != tt.wantKept {
				t.Fatalf("body is %d bytes, want %d", len(m.Data), tt.wantKept)
			}
			if !bytes.Equal(m.Data, body[:tt.wantKept]) {
				t.Fatal("body is not the original's prefix")
			}
			if got := m.Header.Get(HeaderOriginalSize); got != tt.wantSize {
				t.Fatalf("%s = %q, want %q", HeaderOriginalSize, got, tt.wantSize)
			}
		})
	}
}

func TestDeadLetterMsgHeaders(t *testing.T) {
	long := strings.Repeat("é", 1000) // 2000 bytes
	tests := []struct {
		name   string
		dl     DeadLetter
		header string
		want   string // exact value, or "" to check only the invariants
		max    int    // kept bytes before the ellipsis
	}{
		{"plain reason", DeadLetter{Reason: "invalid_json"}, HeaderReason, "invalid_json", 64},
		{"CRLF injection in detail", DeadLetter{Detail: "bad\r\nEdgeflow-Reason: forged"}, HeaderDetail, "bad  Edgeflow-Reason: forged", 512},
		{"LF in source", DeadLetter{Source: "sensors/lab\n/t1"}, HeaderSource, "sensors/lab /t1", 512},
		{"NUL and escape", DeadLetter{Detail: "a\x00b\x1bc"}, HeaderDetail, "a b c", 512},
		{"tab and DEL", DeadLetter{Detail: "a\tb\x7fc"}, HeaderDetail, "a b c", 512},
		{"invalid utf8", DeadLetter{Detail: "a\xff\xfeb"}, HeaderDetail, "a b", 512},
		{"replacement char", DeadLetter{Detail: "a\ufffdb"}, HeaderDetail, "a b", 512},
		{"valid unicode kept", DeadLetter{Source: "sensors/läb/température"}, HeaderSource, "sensors/läb/température", 512},
		{"long reason", DeadLetter{Reason: strings.Repeat("r", 200)}, HeaderReason, strings.Repeat("r", 64) + "…", 64},
		{"long detail multi-byte", DeadLetter{Detail: long}, HeaderDetail, strings.Repeat("é", 256) + "…", 512},
		{"long source with controls", DeadLetter{Source: strings.Repeat("a\r\n", 400)}, HeaderSource, "", 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.dl.Service = "ingest"
			m := tt.dl.Msg(rejectedAt)
			got := m.Header.Get(tt.header)
			if tt.want != "" && got != tt.want {
				t.Fatalf("%s = %q, want %q", tt.header, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("%s = %q: invalid UTF-8", tt.header, got)
			}
			for _, r := range got {
				if r < 0x20 || r == 0x7f || r == utf8.RuneError {
					t.Fatalf("%s = %q: contains %U", tt.header, got, r)
				}
			}
			if kept := strings.TrimSuffix(got, "…"); len(kept) > tt.max {
				t.Fatalf("%s keeps %d bytes, want at most %d", tt.header, len(kept), tt.max)
			}
		})
	}
}

func TestDeadLetterMsgTime(t *testing.T) {
	m := DeadLetter{Service: "processor", Reason: "late"}.Msg(rejectedAt)
	got := m.Header.Get(HeaderTime)
	if want := "2024-11-25T17:40:00.123456789Z"; got != want {
		t.Fatalf("%s = %q, want %q (RFC 3339, UTC)", HeaderTime, got, want)
	}
	if m.Subject != "deadletter.processor" {
		t.Fatalf("subject = %q", m.Subject)
	}
}

// TestDeadLetterPublish sends hostile dead letters through a real server:
// the record arrives whole, with exactly one of each header (no injected
// header survives), on the DEADLETTER stream.
func TestDeadLetterPublish(t *testing.T) {
	ctx := t.Context()
	s := startNATS(t)
	_, js := connect(t, s)
	if err := Ensure(ctx, js, testStreams(1).DeadLetter()); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xff, '\n', 'x'}, 200_000) // 600 kB of hostile bytes
	dl := DeadLetter{
		Service: "ingest",
		Reason:  "invalid_json\r\nEdgeflow-Reason: forged",
		Detail:  "unexpected \x00 byte\r\n\r\nNATS/1.0 503",
		Source:  "sensors/lab/t1\nEdgeflow-Source: forged",
		Body:    big,
	}
	if err := dl.Publish(ctx, js, rejectedAt); err != nil {
		t.Fatal(err)
	}
	fut, err := dl.PublishAsync(js, rejectedAt)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ack := <-fut.Ok():
		if ack.Stream != StreamDeadLetter {
			t.Fatalf("async dead letter stored on %q", ack.Stream)
		}
	case err := <-fut.Err():
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("no acknowledgement of the async dead letter")
	}

	st, err := js.Stream(ctx, StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if raw.Subject != "deadletter.ingest" {
			t.Fatalf("subject = %q", raw.Subject)
		}
		if !bytes.Equal(raw.Data, big[:MaxDeadLetterBody]) {
			t.Fatalf("stored body is %d bytes, not the original's first %d", len(raw.Data), MaxDeadLetterBody)
		}
		for _, h := range []string{HeaderReason, HeaderDetail, HeaderSource, HeaderTime, HeaderOriginalSize} {
			if vals := raw.Header.Values(h); len(vals) != 1 {
				t.Fatalf("header %s has values %q, want exactly one", h, vals)
			}
		}
		if got := raw.Header.Get(HeaderReason); got != "invalid_json  Edgeflow-Reason: forged" {
			t.Fatalf("%s = %q", HeaderReason, got)
		}
		if got := raw.Header.Get(HeaderOriginalSize); got != strconv.Itoa(len(big)) {
			t.Fatalf("%s = %q, want %d", HeaderOriginalSize, got, len(big))
		}
		if len(raw.Header) != 5 {
			t.Fatalf("headers %v: want only the five dead-letter headers", raw.Header)
		}
	}
}
