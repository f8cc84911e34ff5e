// Package pipeline is the dashboard's health view of the pipeline: message
// rates scraped from every service's /metrics, the streams' backlogs and
// consumers from JetStream, and the latest dead-lettered messages.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// Target is one service to scrape: a name and the base URL of its
// /metrics and /readyz.
type Target struct {
	Name string
	URL  string
}

// ParseTargets reads "name=url,name=url" (EDGEFLOW_DASHBOARD_SERVICES).
func ParseTargets(s string) ([]Target, error) {
	var out []Target
	var errs []error
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, raw, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		raw = strings.TrimSuffix(strings.TrimSpace(raw), "/")
		if !ok || !reading.ValidName(name) {
			errs = append(errs, fmt.Errorf("service %q: want name=http://host:port with a name matching ^[A-Za-z0-9_-]{1,64}$", reading.Truncate(part, 80)))
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("service %s: URL %q: want http(s)://host:port", name, reading.Truncate(raw, 80)))
			continue
		}
		if seen[name] {
			errs = append(errs, fmt.Errorf("service %s named twice", name))
			continue
		}
		seen[name] = true
		out = append(out, Target{Name: name, URL: raw})
	}
	return out, errors.Join(errs...)
}

// Sample is what one scrape of a service's /metrics found: the standard
// pipeline counters (service.Pipeline) whatever the service's prefix.
type Sample struct {
	At           time.Time
	In, Out      float64
	DeadLettered float64
	Dropped      float64
	Backlog      float64
	Has          bool   // any edgeflow_*_messages_in_total was found
	Version      string // the version label of edgeflow_build_info
}

// maxMetricsBytes bounds one scrape: a service's /metrics is a few tens of KB.
const maxMetricsBytes = 8 << 20

// ParseSample reads the Prometheus text format.
func ParseSample(r io.Reader, at time.Time) (Sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(r, maxMetricsBytes))
	if err != nil {
		return Sample{At: at}, fmt.Errorf("parse metrics: %w", err)
	}
	s := Sample{At: at}
	for name, f := range fams {
		if !strings.HasPrefix(name, "edgeflow_") {
			continue
		}
		if name == "edgeflow_build_info" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "version" {
						s.Version = l.GetValue()
					}
				}
			}
			continue
		}
		switch {
		case strings.HasSuffix(name, "_messages_in_total"):
			s.In += sum(f)
			s.Has = true
		case strings.HasSuffix(name, "_messages_out_total"):
			s.Out += sum(f)
		case strings.HasSuffix(name, "_messages_deadlettered_total"):
			s.DeadLettered += sum(f)
		case strings.HasSuffix(name, "_messages_dropped_total"):
			s.Dropped += sum(f)
		case strings.HasSuffix(name, "_backlog"):
			s.Backlog += sum(f)
		}
	}
	return s, nil
}

func sum(f *dto.MetricFamily) float64 {
	var t float64
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			t += m.Counter.GetValue()
		case m.Gauge != nil:
			t += m.Gauge.GetValue()
		case m.Untyped != nil:
			t += m.Untyped.GetValue()
		}
	}
	return t
}

// Service is one service's health as the browser reads it.
type Service struct {
	Name         string  `json:"name"`
	Up           bool    `json:"up"`
	Ready        bool    `json:"ready"`
	Error        string  `json:"error,omitempty"`
	InRate       float64 `json:"in_rate"`  // messages/s
	OutRate      float64 `json:"out_rate"` // messages/s
	DeadRate     float64 `json:"dead_rate"`
	In           float64 `json:"in"`
	Out          float64 `json:"out"`
	DeadLettered float64 `json:"deadlettered"`
	Dropped      float64 `json:"dropped"`
	Backlog      float64 `json:"backlog"`
	Version      string  `json:"version,omitempty"` // its edgeflow_build_info
}

// Scraper scrapes targets and turns counter deltas into rates.
type Scraper struct {
	targets []Target
	client  *http.Client

	mu   sync.Mutex
	prev map[string]Sample
}

// NewScraper scrapes targets with a per-request timeout.
func NewScraper(targets []Target, timeout time.Duration) *Scraper {
	return &Scraper{targets: targets, client: &http.Client{Timeout: timeout}, prev: map[string]Sample{}}
}

// Scrape reads every target concurrently.
func (s *Scraper) Scrape(ctx context.Context) []Service {
	out := make([]Service, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		wg.Go(func() { out[i] = s.scrape(ctx, t) })
	}
	wg.Wait()
	return out
}

func (s *Scraper) scrape(ctx context.Context, t Target) Service {
	svc := Service{Name: t.Name}
	sample, err := s.metrics(ctx, t.URL+"/metrics")
	if err != nil {
		svc.Error = err.Error()
		return svc
	}
	svc.Up = true
	svc.In, svc.Out, svc.DeadLettered, svc.Dropped, svc.Backlog = sample.In, sample.Out, sample.DeadLettered, sample.Dropped, sample.Backlog
	svc.Version = sample.Version
	s.mu.Lock()
	prev, ok := s.prev[t.Name]
	s.prev[t.Name] = sample
	s.mu.Unlock()
	if dt := sample.At.Sub(prev.At).Seconds(); ok && dt > 0 {
		svc.InRate = rate(prev.In, sample.In, dt)
		svc.OutRate = rate(prev.Out, sample.Out, dt)
		svc.DeadRate = rate(prev.DeadLettered, sample.DeadLettered, dt)
	}
	if err := s.ready(ctx, t.URL+"/readyz"); err != nil {
		svc.Error = err.Error()
	} else {
		svc.Ready = true
	}
	return svc
}

// rate is the per-second increase; a counter that went down was reset (the
// service restarted), and its new value is the increase.
func rate(prev, cur, dt float64) float64 {
	if cur < prev {
		return cur / dt
	}
	return (cur - prev) / dt
}

func (s *Scraper) metrics(ctx context.Context, u string) (Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Sample{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return Sample{}, fmt.Errorf("scrape: %s", resp.Status)
	}
	return ParseSample(resp.Body, time.Now())
}

func (s *Scraper) ready(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("readyz: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s", reading.Truncate(strings.TrimSpace(string(body)), 300))
	}
	return nil
}
