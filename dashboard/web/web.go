// Package web holds the dashboard's browser assets, embedded in the binary:
// one HTML page, one script and one stylesheet, hand-written, with no
// framework or build step, and the chart library uPlot, vendored unchanged
// (vendor/uplot/README.md: version, source, sha256). Every string that came from a device or a broker is put on the
// page with textContent, never as markup.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
)

//go:embed index.html app.js app.css vendor/uplot/uPlot.iife.min.js vendor/uplot/uPlot.min.css
var files embed.FS

// Asset is one embedded file, ready to serve.
type Asset struct {
	Name        string
	ContentType string
	Body        []byte
	Gzip        []byte
	ETag        string
}

// Assets are the served files by URL path.
var Assets = load()

func load() map[string]*Asset {
	types := map[string]string{
		"index.html":                     "text/html; charset=utf-8",
		"app.js":                         "text/javascript; charset=utf-8",
		"app.css":                        "text/css; charset=utf-8",
		"vendor/uplot/uPlot.iife.min.js": "text/javascript; charset=utf-8",
		"vendor/uplot/uPlot.min.css":     "text/css; charset=utf-8",
	}
	out := map[string]*Asset{}
	version := sha256.New()
	for _, name := range []string{"vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css", "app.js", "app.css", "index.html"} {
		body, err := files.ReadFile(name)
		if err != nil {
			panic(err)
		}
		if name == "index.html" {
			// The script and stylesheet URLs carry their content's hash, so
			// a new binary is never served a stale cached asset.
			body = []byte(strings.ReplaceAll(string(body), "{{version}}", hex.EncodeToString(version.Sum(nil))[:12]))
		} else {
			version.Write(body)
		}
		sum := sha256.Sum256(body)
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		path := "/" + name
		if name == "index.html" {
			path = "/"
		}
		out[path] = &Asset{Name: name, ContentType: types[name], Body: body, Gzip: gz.Bytes(),
			ETag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return out
}

// Handler serves the assets, gzipped when accepted, revalidated by ETag.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := Assets[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ContentType)
		h.Set("ETag", a.ETag)
		h.Add("Vary", "Accept-Encoding")
		if a.Name == "index.html" {
			h.Set("Cache-Control", "no-cache")
		} else {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := a.Body
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.Set("Content-Encoding", "gzip")
			body = a.Gzip
		}
		_, _ = w.Write(body)
	})
}
