package main

import (
	"encoding/csv"
	"net/http"
	"testing"
	"time"
)

// format=csv downloads the range of a history as CSV: the same auth as the
// JSON API, an attachment, a header row, one row per point of each metric
// with RFC 3339 times and the values the JSON gives.
func TestHistoryCSV(t *testing.T) {
	e := newEnv(t)
	t.Setenv("EDGEFLOW_DASHBOARD_TOKEN", "s3cret")
	now := time.Now().Truncate(10 * time.Second)
	var lines []string
	for i := range 6 {
		at := now.Add(-time.Duration(i+1) * 10 * time.Second)
		lines = append(lines, window("telemetry_10s", "lab", "t1", "temperature", at, 10, 20, 22, 210))
		lines = append(lines, window("telemetry_10s", "lab", "t1", "humidity", at, 10, 40, 41, 405))
	}
	e.writeInflux(lines)
	e.start()

	const path = "/api/history/lab/t1?range=15m&format=csv"
	if st := e.get(path, nil); st != http.StatusUnauthorized {
		t.Fatalf("CSV without the token: %d, want 401", st)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="lab_t1_15m.csv"` {
		t.Fatalf("CSV: %s, %q, %q", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
	}
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 13 || len(rows[0]) != 7 || rows[0][0] != "time" || rows[0][3] != "metric" || rows[0][6] != "mean" {
		t.Fatalf("CSV has %d rows, header %v; want a header and 12 rows", len(rows), rows[0])
	}
	for i, r := range rows[1:] {
		at, err := time.Parse(time.RFC3339, r[0])
		if err != nil || at.After(now) || at.Before(now.Add(-time.Minute)) {
			t.Fatalf("row %d: time %q (%v)", i, r[0], err)
		}
		want := map[string][3]string{"humidity": {"40", "41", "40.5"}, "temperature": {"20", "22", "21"}}[r[3]]
		if r[1] != "lab" || r[2] != "t1" || [3]string{r[4], r[5], r[6]} != want {
			t.Fatalf("row %d: %v, want lab,t1,%s,%v", i, r, r[3], want)
		}
		if i < 6 && r[3] != "humidity" || i >= 6 && r[3] != "temperature" {
			t.Fatalf("row %d: %v: rows go by metric, then time", i, r)
		}
		if i > 0 && r[3] == rows[i][3] {
			prev, _ := time.Parse(time.RFC3339, rows[i][0])
			if !at.After(prev) {
				t.Fatalf("row %d at %s after %s: not by time", i, at, prev)
			}
		}
	}
}
