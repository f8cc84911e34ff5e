package window

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"
)

// A window whose sum exceeds the float64 range still has finite aggregates:
// the sum saturates at ±math.MaxFloat64 and the mean is exact wherever it is
// representable, so the aggregate encodes as JSON and as line protocol.
func TestOverflowingSumStaysFinite(t *testing.T) {
	big := 1e308 // a variable: the expected values are float64 arithmetic, not exact constants
	tests := []struct {
		name      string
		values    []float64
		sum, mean float64
		// roundoff: the mean may differ from the exact mean of the values
		// by this relative error (0: it must be the float64 nearest to it)
		roundoff float64
	}{
		{"two of 1e308", []float64{big, big}, math.MaxFloat64, big, 0},
		{"two of -1e308", []float64{-big, -big}, -math.MaxFloat64, -big, 0},
		{"overflow, then back in range", []float64{big, big, -big}, big, big / 3, 0},
		{"three of the largest float", []float64{math.MaxFloat64, math.MaxFloat64, math.MaxFloat64}, math.MaxFloat64, math.MaxFloat64, 0},
		{"far beyond the range, then small values", []float64{big, big, big, big, big, 1, 2}, math.MaxFloat64, exactMean(big, big, big, big, big, 1, 2), 1e-15},
		{"in range: as before", []float64{1, 2, 4}, 7, 7.0 / 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewState(testConfig())
			for i, v := range tt.values {
				s.Add(temp(t0+int64(i), v))
			}
			// The same window loaded from a checkpoint midway gives the same
			// bits.
			loaded := roundTrip(t, s)
			aggs := flushAll(s)
			if got, want := fingerprint(flushAll(loaded)), fingerprint(aggs); got != want {
				t.Fatalf("after a checkpoint:\n%s\nwant:\n%s", got, want)
			}
			st := find(t, aggs, "lab", "d1", "10s", t0).Metrics["t"]
			if st.Sum != tt.sum || st.Mean != tt.mean && math.Abs(st.Mean-tt.mean) > tt.roundoff*math.Abs(tt.mean) {
				t.Fatalf("sum %g, mean %g; want %g, %g", st.Sum, st.Mean, tt.sum, tt.mean)
			}
			for _, v := range []float64{st.Sum, st.Min, st.Max, st.Mean, st.First, st.Last} {
				if math.IsInf(v, 0) || math.IsNaN(v) {
					t.Fatalf("aggregate not finite: %+v", st)
				}
			}
			if _, err := json.Marshal(aggs); err != nil {
				t.Fatalf("aggregate does not encode: %v", err)
			}
		})
	}
}

// exactMean is the float64 nearest to the exact mean of vs.
func exactMean(vs ...float64) float64 {
	sum := new(big.Float).SetPrec(4096)
	for _, v := range vs {
		sum.Add(sum, big.NewFloat(v))
	}
	mean, _ := sum.Quo(sum, big.NewFloat(float64(len(vs)))).Float64()
	return mean
}
