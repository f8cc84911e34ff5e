package reading

import "math"

// FNV-1a, 64 bits (hash/fnv's New64a), written out so that Identity neither
// allocates nor goes through an interface.
const (
	fnvOffset64 uint64 = 14695981039346656037
	fnvPrime64  uint64 = 1099511628211
)

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime64 }

// fnvU64 hashes v as 8 bytes, big endian.
func fnvU64(h, v uint64) uint64 {
	for shift := 56; shift >= 0; shift -= 8 {
		h = fnvByte(h, byte(v>>shift))
	}
	return h
}

// fnvUvarint hashes v as a uvarint (encoding/binary), 1 byte below 128.
func fnvUvarint(h, v uint64) uint64 {
	for v >= 0x80 {
		h = fnvByte(h, byte(v)|0x80)
		v >>= 7
	}
	return fnvByte(h, byte(v))
}

// fnvString hashes the length of s, then its bytes, so that "ab"+"c" and
// "a"+"bc" differ.
func fnvString(h uint64, s string) uint64 {
	h = fnvUvarint(h, uint64(len(s)))
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

// Identity is a 64-bit identity of r: two deliveries of one reading have the
// same, and a reading that differs in site, device, seq, device time, or a
// metric's name or value bits has another, but for
// hash collisions (about 2⁻⁶⁴ per pair). ok is false when r has neither Seq
// nor DeviceTime: such a reading cannot be told from a replay and is not
// deduplicated (at-least-once): two identical bare values are more likely
// two readings than one redelivery.
//
// The processor stores identities in its checkpoints, so the function is
// fixed: FNV-1a 64 over the site and the device (each its length as a
// uvarint, then its bytes), a seq flag byte (1, 0) and seq, a device-time
// flag byte and TS, then the number of metrics (uvarint) and the sum (mod
// 2⁶⁴) of each metric's own FNV-1a 64 of its name (length-prefixed) and
// value bits; seq, TS, value bits and the sum as 8 bytes big endian. The
// sum makes it independent of map order without sorting. Changing any of
// this breaks every checkpoint's deduplication (TestIdentityGolden).
func (r *Reading) Identity() (id uint64, ok bool) {
	if r.Seq == nil && !r.DeviceTime {
		return 0, false
	}
	h := fnvString(fnvOffset64, r.Site)
	h = fnvString(h, r.Device)
	if r.Seq != nil {
		h = fnvU64(fnvByte(h, 1), *r.Seq)
	} else {
		h = fnvByte(h, 0)
	}
	if r.DeviceTime {
		h = fnvU64(fnvByte(h, 1), uint64(r.TS))
	} else {
		h = fnvByte(h, 0)
	}
	var metrics uint64
	for name, v := range r.Metrics {
		metrics += fnvU64(fnvString(fnvOffset64, name), math.Float64bits(v))
	}
	h = fnvUvarint(h, uint64(len(r.Metrics)))
	return fnvU64(h, metrics), true
}
