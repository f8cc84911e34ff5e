// Package history reads a device's past from InfluxDB's window aggregates
// (telemetry_{window}), never from raw points: the measurement is chosen by
// the range so that a chart of any range costs a few hundred rows, and every
// query is one fixed template filled only with validated names.
package history

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// MaxRows is the most windows one series may span before a coarser
// measurement is chosen: 24 h of 1 m windows is 1440 rows.
const MaxRows = 1500

// TargetPoints is about how many points a chart gets: wider buckets are
// aggregated by InfluxDB (min of min, max of max, sum of sum and count).
const TargetPoints = 360

// Ranges the browser offers.
var Ranges = map[string]time.Duration{
	"15m": 15 * time.Minute,
	"1h":  time.Hour,
	"24h": 24 * time.Hour,
	"7d":  7 * 24 * time.Hour,
}

// Errors of Plan.
var (
	ErrRange   = errors.New("unknown range (want 15m, 1h, 24h or 7d)")
	ErrName    = errors.New("invalid site or device name")
	ErrWindows = errors.New("no window measurements configured")
)

// Plan is how a range is read: from which measurement, in which buckets.
type Plan struct {
	Range       string
	Span        time.Duration
	Window      time.Duration // of the measurement
	Measurement string        // telemetry_{window}
	Step        time.Duration // width of one chart point, a multiple of Window
}

// Choose picks the finest window whose rows over span stay within MaxRows,
// else the coarsest, and a step that gives about TargetPoints points.
// windows are the window lengths the processors write.
func Choose(rangeName string, windows []time.Duration) (Plan, error) {
	span, ok := Ranges[rangeName]
	if !ok {
		return Plan{}, ErrRange
	}
	if len(windows) == 0 {
		return Plan{}, ErrWindows
	}
	ws := append([]time.Duration(nil), windows...)
	sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
	w := ws[len(ws)-1]
	for _, c := range ws {
		if span/c <= MaxRows {
			w = c
			break
		}
	}
	step := span / TargetPoints
	if step < w {
		step = w
	}
	step = (step + w - 1) / w * w // a whole number of windows
	return Plan{Range: rangeName, Span: span, Window: w,
		Measurement: "telemetry_" + reading.WindowName(w), Step: step}, nil
}

// fluxTemplate is the only query the dashboard sends for history. %[1]s is
// the bucket, %[2]s the span, %[3]s the measurement, %[4]s and %[5]s site
// and device, %[6]s the step: all either configuration quoted by
// fluxString, durations formatted here, or names that passed ValidName.
// min, max and sum/count are aggregated separately per step so that the
// band is exact and the mean is weighted by count.
const fluxTemplate = `base = from(bucket: %[1]s)
  |> range(start: -%[2]s)
  |> filter(fn: (r) => r._measurement == %[3]s and r.site == %[4]s and r.device == %[5]s)
lo = base |> filter(fn: (r) => r._field == "min") |> aggregateWindow(every: %[6]s, fn: min, timeSrc: "_start", createEmpty: false)
hi = base |> filter(fn: (r) => r._field == "max") |> aggregateWindow(every: %[6]s, fn: max, timeSrc: "_start", createEmpty: false)
sc = base |> filter(fn: (r) => r._field == "sum" or r._field == "count") |> toFloat() |> aggregateWindow(every: %[6]s, fn: sum, timeSrc: "_start", createEmpty: false)
union(tables: [lo, hi, sc])
  |> keep(columns: ["_time", "_field", "_value", "metric"])`

// Flux returns the query of plan for one device.
func (p Plan) Flux(bucket, site, device string) (string, error) {
	if !reading.ValidName(site) || !reading.ValidName(device) {
		return "", ErrName
	}
	return fmt.Sprintf(fluxTemplate, fluxString(bucket), fluxDuration(p.Span), fluxString(p.Measurement),
		fluxString(site), fluxString(device), fluxDuration(p.Step)), nil
}

// fluxString quotes s as a Flux string literal. Names never need it (they
// are validated), but the bucket comes from configuration.
func fluxString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// fluxDuration formats d as a Flux duration literal in whole seconds.
func fluxDuration(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}
