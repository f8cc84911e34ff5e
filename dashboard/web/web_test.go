package web

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The script never turns a string into markup: device and broker strings
// reach the page only through textContent. The browser test checks the
// result; this keeps the sinks out of the source.
func TestNoMarkupSinks(t *testing.T) {
	js := string(Assets["/app.js"].Body)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('on", "srcdoc"} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}

// Everything is embedded: no asset loads anything from another origin.
func TestSelfContained(t *testing.T) {
	url := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`)
	for path, a := range Assets {
		if url.Match(a.Body) || strings.Contains(string(a.Body), "@import") {
			t.Errorf("%s loads from another origin", path)
		}
	}
	index := string(Assets["/"].Body)
	if strings.Contains(index, "{{version}}") || !regexp.MustCompile(`/app\.js\?v=[0-9a-f]{12}`).MatchString(index) {
		t.Fatalf("index.html does not name its assets by version:\n%s", index)
	}
}

func TestHandler(t *testing.T) {
	h := Handler()
	for path, a := range Assets {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Accept-Encoding", "gzip, br")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" || rec.Body.Len() != len(a.Gzip) || rec.Header().Get("Content-Type") != a.ContentType {
			t.Fatalf("GET %s: %d %v", path, rec.Code, rec.Header())
		}
		req = httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("If-None-Match", a.ETag)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified {
			t.Fatalf("GET %s with its ETag: %d", path, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/web.go", nil))
	if rec.Code != 404 {
		t.Fatalf("GET /web.go: %d", rec.Code)
	}
}

// The vendored uPlot is the release vendor/uplot/README.md records: each
// file's sha256 matches its row, so an edit or a different version shows.
func TestVendoredUPlotIsTheRecordedRelease(t *testing.T) {
	readme, err := os.ReadFile("vendor/uplot/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "uplot@1.6.32") {
		t.Fatal("README does not name uplot@1.6.32")
	}
	for _, name := range []string{"uPlot.iife.min.js", "uPlot.min.css"} {
		m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(name) + ` \| ([0-9a-f]{64}) \|$`).FindStringSubmatch(string(readme))
		if m == nil {
			t.Fatalf("README records no sha256 of %s", name)
		}
		a := Assets["/vendor/uplot/"+name]
		if a == nil {
			t.Fatalf("%s is not served", name)
		}
		if sum := sha256.Sum256(a.Body); hex.EncodeToString(sum[:]) != m[1] {
			t.Errorf("%s: sha256 %x, README records %s", name, sum, m[1])
		}
	}
	if !strings.HasPrefix(string(Assets["/vendor/uplot/uPlot.iife.min.js"].Body), "/*! https://github.com/leeoniya/uPlot (v1.6.32) */") {
		t.Error("uPlot.iife.min.js is not uPlot v1.6.32")
	}
}
