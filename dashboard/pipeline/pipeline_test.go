package pipeline

import (
	"strings"
	"testing"
	"time"
)

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets(" ingest=http://127.0.0.1:8081/, processor-0=http://127.0.0.1:8082 ,")
	if err != nil || len(got) != 2 || got[0] != (Target{"ingest", "http://127.0.0.1:8081"}) || got[1].Name != "processor-0" {
		t.Fatalf("ParseTargets = %+v, %v", got, err)
	}
	for _, bad := range []string{"ingest", "in gest=http://x:1", "a=ftp://x", "a=http://x:1,a=http://y:1", "a=http://"} {
		if _, err := ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) accepted", bad)
		}
	}
	if got, err := ParseTargets(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
}

func TestParseSample(t *testing.T) {
	in := `# TYPE edgeflow_ingest_messages_in_total counter
edgeflow_ingest_messages_in_total 120
# TYPE edgeflow_ingest_messages_out_total counter
edgeflow_ingest_messages_out_total 100
# TYPE edgeflow_ingest_messages_deadlettered_total counter
edgeflow_ingest_messages_deadlettered_total{reason="invalid_json"} 3
edgeflow_ingest_messages_deadlettered_total{reason="bad_name"} 2
# TYPE edgeflow_ingest_backlog gauge
edgeflow_ingest_backlog 7
# TYPE go_goroutines gauge
go_goroutines 12
# TYPE edgeflow_build_info gauge
edgeflow_build_info{goversion="go1.26.4",revision="4fe7e94",version="v1.2.3"} 1
`
	s, err := ParseSample(strings.NewReader(in), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has || s.In != 120 || s.Out != 100 || s.DeadLettered != 5 || s.Backlog != 7 || s.Version != "v1.2.3" {
		t.Fatalf("sample %+v", s)
	}
	if r := rate(100, 160, 2); r != 30 {
		t.Fatalf("rate = %v", r)
	}
	if r := rate(100, 10, 2); r != 5 {
		t.Fatalf("rate after a counter reset = %v", r)
	}
}

// Dead-letter fields are untrusted: control characters go, length is
// bounded, markup is left as text for the browser to show as text.
func TestNewDeadLetter(t *testing.T) {
	hdr := map[string][]string{
		"Edgeflow-Reason": {"bad_name"},
		"Edgeflow-Source": {"sensors/<img src=x onerror=alert(1)>/d"},
		"Edgeflow-Time":   {"2026-11-25T10:00:00Z"},
		"Edgeflow-Detail": {"line1\nline2\x1b[31m"},
	}
	body := []byte("<script>alert(1)</script>" + strings.Repeat("y", 500) + "\xff")
	d := NewDeadLetter("deadletter.ingest", 9, hdr, body, time.Unix(0, 0))
	if d.Service != "ingest" || d.Reason != "bad_name" || d.Topic != "sensors/<img src=x onerror=alert(1)>/d" || d.Seq != 9 {
		t.Fatalf("%+v", d)
	}
	if d.Time != time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMilli() || d.Size != len(body) {
		t.Fatalf("time/size %+v", d)
	}
	if strings.ContainsAny(d.Detail, "\n\x1b") || !strings.HasPrefix(d.Excerpt, "<script>") || len(d.Excerpt) > ExcerptBytes+3 {
		t.Fatalf("detail %q excerpt %q", d.Detail, d.Excerpt)
	}
	if bad := NewDeadLetter("deadletter.a.b", 1, nil, nil, time.Now()); bad.Service != "?" {
		t.Fatalf("service %q", bad.Service)
	}
}
