// Package history reads a device's past from InfluxDB's window aggregates
// (telemetry_{window}), never from raw points: the measurement is chosen by
// the range so that a chart of any range costs a few hundred rows, and every
// query is one fixed template filled only with validated names.
package history

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/edgeflow/edgeflow/internal/influx"
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

// InfluxQL returns the only history query the dashboard sends, for one
// device over [from, to], and the database it runs in. Every name is
// quoted and escaped (influx.QuoteIdent, influx.QuoteString) although site and device
// passed ValidName and the measurement is built from a window length; the
// bucket comes from configuration; the time bounds are formatted from
// time.Time values. min, max and sum/count are aggregated separately per
// step so that the band is exact and the mean is weighted by count; GROUP BY
// time aligns steps to the epoch, as Flux's aggregateWindow did.
func (p Plan) InfluxQL(bucket, site, device string, from, to time.Time) (db, q string, err error) {
	if !reading.ValidName(site) || !reading.ValidName(device) {
		return "", "", ErrName
	}
	db, src := source(bucket, p.Measurement)
	q = fmt.Sprintf(`SELECT min("min") AS "min", max("max") AS "max", sum("sum") AS "sum", sum("count") AS "count" FROM %s`+
		` WHERE "site" = %s AND "device" = %s AND time >= %s AND time <= %s GROUP BY time(%ds), "metric" fill(none)`,
		src, influx.QuoteString(site), influx.QuoteString(device), timeLiteral(from), timeLiteral(to), int64(p.Step/time.Second))
	return db, q, nil
}
