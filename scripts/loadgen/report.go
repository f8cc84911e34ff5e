package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
)

// Report is what a run came to. It is printed as a summary and written as
// JSON by -report. "Acked" means acknowledged by the broker (PUBACK for
// QoS 1, PUBCOMP for QoS 2); at QoS 0, which has no acknowledgement, it means
// written to the connection.
type Report struct {
	Config    ReportConfig `json:"config"`
	StartedAt time.Time    `json:"started_at"`
	// ElapsedSeconds runs from the first publish to the last acknowledgement
	// (or the drain timeout).
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// PublishSeconds runs from the first publish to the last.
	PublishSeconds float64 `json:"publish_seconds"`
	// AchievedRate is acknowledged publishes, duplicates included, per second of ElapsedSeconds.
	AchievedRate float64 `json:"achieved_rate"`
	Totals       Totals  `json:"totals"`
	// Latency is publish→acknowledgement, over originals and duplicates.
	Latency Latency `json:"latency"`
	// Failures counts failed publishes (originals and duplicates) by reason.
	Failures map[string]int64 `json:"failures"`
	// ConnectionLosses counts connections lost (and re-established by paho) during the run.
	ConnectionLosses int64          `json:"connection_losses"`
	Devices          []DeviceReport `json:"devices"`
}

// ReportConfig is the part of Config a reader of the report needs.
type ReportConfig struct {
	Broker          string  `json:"broker"`
	Devices         int     `json:"devices"`
	Sites           int     `json:"sites"`
	Rate            float64 `json:"rate"`
	Count           int64   `json:"count"`
	DurationSeconds float64 `json:"duration_seconds"`
	Metrics         int     `json:"metrics"`
	QoS             byte    `json:"qos"`
	Publishers      int     `json:"publishers"`
	Duplicates      float64 `json:"duplicates"`
	SeqStart        uint64  `json:"seq_start"`
	MaxInFlight     int     `json:"max_inflight"`
}

// Totals are over all devices. Attempted = Acked + Failed, and
// DuplicatesSent = DuplicatesAcked + DuplicatesFailed, always.
type Totals struct {
	// Attempted counts distinct messages handed to the MQTT client.
	Attempted int64 `json:"attempted"`
	Acked     int64 `json:"acked"`
	Failed    int64 `json:"failed"`
	// DuplicatesSent counts second copies (same payload bytes) handed to the client.
	DuplicatesSent   int64 `json:"duplicates_sent"`
	DuplicatesAcked  int64 `json:"duplicates_acked"`
	DuplicatesFailed int64 `json:"duplicates_failed"`
}

// Latency summarises publish→acknowledgement times in milliseconds, to within 1 %.
type Latency struct {
	Samples uint64  `json:"samples"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	MeanMs  float64 `json:"mean_ms"`
}

// DeviceReport is one device's messages. FirstSeq and LastSeq are the lowest
// and highest acknowledged seq (null when none was); Gaps counts the seqs
// between them that were not acknowledged, so a device with Gaps 0 delivered
// FirstSeq..LastSeq without a hole.
type DeviceReport struct {
	Site            string  `json:"site"`
	Device          string  `json:"device"`
	Attempted       int64   `json:"attempted"`
	Acked           int64   `json:"acked"`
	Failed          int64   `json:"failed"`
	FirstSeq        *uint64 `json:"first_seq"`
	LastSeq         *uint64 `json:"last_seq"`
	Gaps            int64   `json:"gaps"`
	DuplicatesSent  int64   `json:"duplicates_sent"`
	DuplicatesAcked int64   `json:"duplicates_acked"`
}

func (g *Generator) report(pubs []*publisher, start time.Time, published, elapsed time.Duration) Report {
	cfg := g.cfg
	r := Report{
		Config: ReportConfig{
			Broker: cfg.Broker, Devices: cfg.Devices, Sites: cfg.Sites, Rate: cfg.Rate,
			Count: cfg.Count, DurationSeconds: cfg.Duration.Seconds(), Metrics: cfg.Metrics,
			QoS: cfg.QoS, Publishers: cfg.Publishers, Duplicates: cfg.Duplicates,
			SeqStart: cfg.SeqStart, MaxInFlight: cfg.MaxInFlight,
		},
		StartedAt:        start.UTC(),
		ElapsedSeconds:   elapsed.Seconds(),
		PublishSeconds:   published.Seconds(),
		Failures:         map[string]int64{},
		ConnectionLosses: g.connectionLosses.Load(),
		Devices:          make([]DeviceReport, 0, cfg.Devices),
	}
	var hist latencyHistogram
	for _, p := range pubs {
		p.mu.Lock()
		hist.merge(&p.latency)
		for reason, n := range p.failures {
			r.Failures[reason] += n
		}
		for i, d := range p.devices {
			st := p.stats[i]
			dr := DeviceReport{
				Site: cfg.SiteName(d), Device: DeviceName(d),
				Attempted: st.attempted, Acked: st.acked, Failed: st.failed,
				DuplicatesSent: st.dupsSent, DuplicatesAcked: st.dupsAcked,
			}
			if st.acked > 0 {
				first, last := st.firstSeq, st.lastSeq
				dr.FirstSeq, dr.LastSeq = &first, &last
				dr.Gaps = int64(last-first+1) - st.acked
			}
			r.Devices = append(r.Devices, dr)
			r.Totals.Attempted += st.attempted
			r.Totals.Acked += st.acked
			r.Totals.Failed += st.failed
			r.Totals.DuplicatesSent += st.dupsSent
			r.Totals.DuplicatesAcked += st.dupsAcked
			r.Totals.DuplicatesFailed += st.dupsFailed
		}
		p.mu.Unlock()
	}
	slices.SortFunc(r.Devices, func(a, b DeviceReport) int { return cmp.Compare(a.Device, b.Device) })
	if elapsed > 0 {
		r.AchievedRate = float64(r.Totals.Acked+r.Totals.DuplicatesAcked) / elapsed.Seconds()
	}
	r.Latency = Latency{
		Samples: hist.n,
		P50Ms:   ms(hist.quantile(0.50)),
		P99Ms:   ms(hist.quantile(0.99)),
		MaxMs:   ms(hist.max),
		MeanMs:  ms(hist.mean()),
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summaryDeviceLimit is the most devices the summary lists one by one;
// beyond it only devices with failures or gaps are listed (the JSON report
// always has them all).
const summaryDeviceLimit = 200

// WriteSummary writes the report for a person.
func (r Report) WriteSummary(w io.Writer) error {
	c := r.Config
	t := r.Totals
	ackName := "PUBACK"
	switch c.QoS {
	case 0:
		ackName = "write"
	case 2:
		ackName = "PUBCOMP"
	}
	fmt.Fprintf(w, "loadgen: %s, %d devices at %d sites over %d connections, QoS %d, %d metrics\n",
		c.Broker, c.Devices, c.Sites, c.Publishers, c.QoS, c.Metrics)
	fmt.Fprintf(w, "  messages    attempted %d  acked %d  failed %d\n", t.Attempted, t.Acked, t.Failed)
	fmt.Fprintf(w, "  duplicates  sent %d  acked %d  failed %d\n", t.DuplicatesSent, t.DuplicatesAcked, t.DuplicatesFailed)
	fmt.Fprintf(w, "  time        elapsed %.3fs (publishing %.3fs)  achieved %.0f msgs/s\n", r.ElapsedSeconds, r.PublishSeconds, r.AchievedRate)
	fmt.Fprintf(w, "  latency     publish→%s p50 %.2fms  p99 %.2fms  max %.2fms  (%d samples)\n",
		ackName, r.Latency.P50Ms, r.Latency.P99Ms, r.Latency.MaxMs, r.Latency.Samples)
	fmt.Fprintf(w, "  connection losses %d\n", r.ConnectionLosses)
	for _, reason := range slices.Sorted(maps.Keys(r.Failures)) {
		fmt.Fprintf(w, "  failed: %d × %s\n", r.Failures[reason], reason)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "device\tsite\tfirst_seq\tlast_seq\tacked\tfailed\tgaps\tdup_acked")
	hidden := 0
	for _, d := range r.Devices {
		if len(r.Devices) > summaryDeviceLimit && d.Failed == 0 && d.Gaps == 0 {
			hidden++
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", d.Device, d.Site,
			seqText(d.FirstSeq), seqText(d.LastSeq), d.Acked, d.Failed, d.Gaps, d.DuplicatesAcked)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if hidden > 0 {
		_, err := fmt.Fprintf(w, "  (%d more devices without failures or gaps: see -report)\n", hidden)
		return err
	}
	return nil
}

func seqText(s *uint64) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprint(*s)
}
