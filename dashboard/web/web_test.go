package web

import (
	"net/http"
	"net/http/httptest"
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
