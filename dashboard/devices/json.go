package devices

import (
	"math"
	"strconv"
)

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

// appendFloat writes v as JSON; values are finite (readings are validated),
// but a defensive null keeps the output valid JSON whatever happens.
func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
