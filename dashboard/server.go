package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/dashboard/history"
	"github.com/edgeflow/edgeflow/dashboard/live"
	"github.com/edgeflow/edgeflow/dashboard/web"
	"github.com/edgeflow/edgeflow/internal/reading"
)

// contentSecurityPolicy allows only the embedded assets: even if a string
// from a device ever reached the page as markup, no inline script or
// handler could run and nothing could be loaded from elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard; ops serves /healthz, /readyz and /metrics,
// which stay open for probes and scrapers when a token is set.
func (d *Dashboard) Handler(ops http.Handler) http.Handler {
	app := http.NewServeMux()
	assets := web.Handler()
	app.Handle("GET /{$}", assets)
	app.Handle("GET /app.js", assets)
	app.Handle("GET /app.css", assets)
	app.Handle("GET /vendor/uplot/uPlot.iife.min.js", assets)
	app.Handle("GET /vendor/uplot/uPlot.min.css", assets)
	app.HandleFunc("GET /api/overview", d.apiOverview)
	app.HandleFunc("GET /api/devices/{site}/{device}", d.apiDevice)
	app.HandleFunc("GET /api/history/{site}/{device}", d.apiHistory)
	app.HandleFunc("GET /api/alerts", d.apiAlerts)
	app.HandleFunc("GET /api/pipeline", d.apiPipeline)
	app.HandleFunc("GET /api/events", d.apiEvents)

	mux := http.NewServeMux()
	mux.Handle("GET /healthz", ops)
	mux.Handle("GET /readyz", ops)
	mux.Handle("GET /metrics", ops)
	mux.Handle("/", secure(authenticate(d.cfg.Token, app)))
	return mux
}

// secure sets the headers every dashboard response carries.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// authenticate requires token, when set, as a Bearer token or as the
// password of basic auth (what a browser can send, EventSource included).
func authenticate(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	ok := func(got string) bool {
		h := sha256.Sum256([]byte(got))
		return subtle.ConstantTimeCompare(h[:], want[:]) == 1
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bearer, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && ok(bearer) {
			next.ServeHTTP(w, r)
			return
		}
		if _, pass, found := r.BasicAuth(); found && ok(pass) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="edgeflow dashboard", charset="UTF-8"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	})
}

// writeJSON sends v, gzipped when the browser accepts it and it is worth it.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	data, ok := v.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept-Encoding")
	if len(data) > 1024 && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		_, _ = zw.Write(data)
		_ = zw.Close()
		data = buf.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

type apiError struct {
	Error string `json:"error"`
}

// overview is GET /api/overview.
type overview struct {
	Now          int64 `json:"now"`
	OfflineAfter int64 `json:"offline_after"`
	Devices      any   `json:"devices"`
}

func (d *Dashboard) apiOverview(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, r, http.StatusOK, overview{Now: time.Now().UnixMilli(),
		OfflineAfter: d.cfg.OfflineAfter.Milliseconds(), Devices: d.devices.Overview()})
}

// names reads and validates the {site} and {device} path values.
func names(w http.ResponseWriter, r *http.Request) (site, device string, ok bool) {
	site, device = r.PathValue("site"), r.PathValue("device")
	if !reading.ValidName(site) || !reading.ValidName(device) {
		writeJSON(w, r, http.StatusBadRequest, apiError{"site and device must match ^[A-Za-z0-9_-]{1,64}$"})
		return "", "", false
	}
	return site, device, true
}

func (d *Dashboard) apiDevice(w http.ResponseWriter, r *http.Request) {
	site, device, ok := names(w, r)
	if !ok {
		return
	}
	s, found := d.devices.Device(site, device)
	if !found {
		writeJSON(w, r, http.StatusNotFound, apiError{"no such device (yet)"})
		return
	}
	writeJSON(w, r, http.StatusOK, struct {
		Now          int64 `json:"now"`
		OfflineAfter int64 `json:"offline_after"`
		Device       any   `json:"device"`
	}{time.Now().UnixMilli(), d.cfg.OfflineAfter.Milliseconds(), s})
}

func (d *Dashboard) apiHistory(w http.ResponseWriter, r *http.Request) {
	site, device, ok := names(w, r)
	if !ok {
		return
	}
	rng := r.URL.Query().Get("range")
	if rng == "" {
		rng = "1h"
	}
	ctx := r.Context()
	res, err := d.history.Device(ctx, rng, site, device)
	switch {
	case errors.Is(err, history.ErrRange), errors.Is(err, history.ErrName):
		writeJSON(w, r, http.StatusBadRequest, apiError{err.Error()})
	case err != nil:
		d.log.Warn("history query", "site", site, "device", device, "range", rng, "err", err)
		writeJSON(w, r, http.StatusBadGateway, apiError{"history unavailable: InfluxDB did not answer"})
	case r.URL.Query().Get("format") == "csv":
		writeHistoryCSV(w, res)
	default:
		writeJSON(w, r, http.StatusOK, res)
	}
}

// writeHistoryCSV sends a history as a CSV download (format=csv): a header
// row, then one row per metric and point, by metric then time, times in
// RFC 3339 UTC, empty cells where a value is missing. Names are validated,
// so the file name needs no quoting beyond the quotes.
func writeHistoryCSV(w http.ResponseWriter, res history.Result) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="`+res.Site+"_"+res.Device+"_"+res.Range+`.csv"`)
	metrics := make([]string, 0, len(res.Series))
	for m := range res.Series {
		metrics = append(metrics, m)
	}
	sort.Strings(metrics)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"time", "site", "device", "metric", "min", "max", "mean"})
	cell := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, m := range metrics {
		for _, b := range res.Series[m] {
			_ = cw.Write([]string{time.UnixMilli(b.T).UTC().Format(time.RFC3339), res.Site, res.Device, m,
				cell(b.Min), cell(b.Max), cell(b.Mean)})
		}
	}
	cw.Flush()
}

func (d *Dashboard) apiAlerts(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, r, http.StatusOK, d.alerts.Snapshot(r.URL.Query().Get("history") != "0"))
}

func (d *Dashboard) apiPipeline(w http.ResponseWriter, r *http.Request) {
	data := d.healthJSON()
	if data == nil {
		writeJSON(w, r, http.StatusServiceUnavailable, apiError{"starting"})
		return
	}
	writeJSON(w, r, http.StatusOK, data)
}

// apiEvents is the live stream: ?view=overview|device|alerts|pipeline, and
// site and device for the device view. Alerts go to every view (the banner).
func (d *Dashboard) apiEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topics := []string{live.TopicAlerts}
	switch q.Get("view") {
	case "overview", "":
		topics = append(topics, live.TopicDevices)
	case "device":
		site, device := q.Get("site"), q.Get("device")
		if !reading.ValidName(site) || !reading.ValidName(device) {
			writeJSON(w, r, http.StatusBadRequest, apiError{"site and device must match ^[A-Za-z0-9_-]{1,64}$"})
			return
		}
		topics = append(topics, live.DeviceTopic(site, device))
	case "pipeline":
		topics = append(topics, live.TopicPipeline)
	case "alerts":
	default:
		writeJSON(w, r, http.StatusBadRequest, apiError{"view must be overview, device, alerts or pipeline"})
		return
	}
	c, ok := d.hub.TrySubscribe(d.cfg.MaxClients, topics...)
	if !ok {
		w.Header().Set("Retry-After", "10")
		writeJSON(w, r, http.StatusServiceUnavailable, apiError{"too many live connections"})
		return
	}
	defer d.hub.Unsubscribe(c)
	if err := d.hub.Stream(r.Context(), w, c); err != nil && !errors.Is(err, live.ErrClosed) {
		d.log.Debug("live stream ended", "err", err, "dropped", c.Dropped())
	}
}
