package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"iter"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// ErrCheckpoint, wrapped by every error of Load and UnmarshalBinary, means
// the bytes are not a checkpoint this version reads, or are damaged.
var ErrCheckpoint = errors.New("invalid window checkpoint")

// checkpointMagic starts every checkpoint; its last byte is the version,
// checkpointVersion. UnmarshalBinary reads every version from 1: version 1
// had no silences (every device loads silent for 0); versions 1 and 2 had
// no sum exponents; versions 1 to 3 no since marks; versions 1 to 4 no
// clock offsets (every device loads with offset 0); versions 1 to 5 no
// identities (every device loads with none: a replay of a reading folded
// before the checkpoint counts again).
const (
	checkpointMagic   = "EFW\x06"
	checkpointVersion = 6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The checkpoint is a compact binary encoding, canonical (the same State
// always encodes to the same bytes), followed by a CRC-32C of everything
// before it. Integers are varints (signed ones zig-zag), floats their
// IEEE-754 bits, so a round trip is exact. Layout, version 6:
//
//	magic "EFW\x06"
//	config: n, n × size ms, lateness ms, idle grace ms, forget after ms (uvarints)
//	floor (varint)
//	names: n, then n × (len, bytes): site and metric names, sorted, unique
//	devices: n, then per device, sorted by site and name:
//	  site (name index), name (len, bytes), newest ts, newest received (varints),
//	  silence in ms (uvarint; not in version 1),
//	  clock offset (varint; not before version 5)
//	  per size: closed until (varint),
//	    since (uvarint: 0 for noSince, else closed until − since + 1; not before version 4),
//	    n windows, per window by start:
//	    start (varint), n metrics, per metric by name:
//	      name index, count (uvarints)
//	      count = 1: value (8 bytes), ts − start (uvarint)
//	      count > 1: sum, min, max, first, last (5 × 8 bytes),
//	                 first ts − start, last ts − start (uvarints),
//	                 sum exponent (uvarint; not before version 3)
//	  identities (not before version 6), of the readings with device time,
//	    then of those without: n, then per entry by event time and identity:
//	    event time − the previous entry's (varint; the first entry's − the
//	    device's newest ts), identity (big endian; with device time 4 bytes,
//	    folded as in memory, without 8)
//	CRC-32C (4 bytes, big endian)
//
// A count of 1 stores one value: observe sets all five to the same bits.

// MarshalBinary encodes s as a checkpoint.
func (s *State) MarshalBinary() ([]byte, error) {
	devs := make([]*device, 0, len(s.devices))
	nameSet := make(map[string]struct{})
	size := 64 // upper bound of the encoding, to allocate once
	for _, d := range s.devices {
		devs = append(devs, d)
		nameSet[d.site] = struct{}{}
		size += 6*binary.MaxVarintLen64 + len(d.name) + 1 + len(d.sizes)*(3*binary.MaxVarintLen64) +
			d.dated.len()*(binary.MaxVarintLen64+4) + len(d.undated.entries)*(binary.MaxVarintLen64+8)
		for i := range d.sizes {
			for _, w := range d.sizes[i].open {
				size += 2 * binary.MaxVarintLen64
				for j := range w.metrics {
					if w.metrics[j].count > 0 {
						nameSet[w.metrics[j].name] = struct{}{}
						size += 5*binary.MaxVarintLen64 + 5*8
					}
				}
			}
		}
	}
	slices.SortFunc(devs, func(a, b *device) int {
		if c := strings.Compare(a.site, b.site); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	names := make([]string, 0, len(nameSet))
	for n := range nameSet {
		names = append(names, n)
	}
	slices.Sort(names)
	index := make(map[string]uint64, len(names))
	for i, n := range names {
		index[n] = uint64(i)
	}

	for _, n := range names {
		size += binary.MaxVarintLen64 + len(n)
	}
	b := make([]byte, 0, size)
	b = append(b, checkpointMagic...)
	b = binary.AppendUvarint(b, uint64(len(s.sizes)))
	for _, size := range s.sizes {
		b = binary.AppendUvarint(b, uint64(size))
	}
	b = binary.AppendUvarint(b, uint64(s.lateness))
	b = binary.AppendUvarint(b, uint64(s.idleGrace))
	b = binary.AppendUvarint(b, uint64(s.forgetAfter))
	b = binary.AppendVarint(b, s.floor)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, n := range names {
		b = appendString(b, n)
	}
	b = binary.AppendUvarint(b, uint64(len(devs)))
	for _, d := range devs {
		b = binary.AppendUvarint(b, index[d.site])
		b = appendString(b, d.name)
		b = binary.AppendVarint(b, d.maxTS)
		b = binary.AppendVarint(b, d.lastRx)
		b = binary.AppendUvarint(b, uint64(s.silence(d)))
		b = binary.AppendVarint(b, d.offset)
		for i := range d.sizes {
			ss := &d.sizes[i]
			b = binary.AppendVarint(b, ss.closedUntil)
			if ss.since == noSince {
				b = binary.AppendUvarint(b, 0)
			} else {
				b = binary.AppendUvarint(b, uint64(ss.closedUntil-ss.since)+1)
			}
			b = binary.AppendUvarint(b, uint64(len(ss.open)))
			for _, w := range ss.open {
				b = binary.AppendVarint(b, w.start)
				b = binary.AppendUvarint(b, uint64(w.used()))
				for j := range w.metrics {
					m := &w.metrics[j]
					if m.count == 0 {
						continue
					}
					b = binary.AppendUvarint(b, index[m.name])
					b = binary.AppendUvarint(b, uint64(m.count))
					if m.count == 1 {
						b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.sum))
						b = binary.AppendUvarint(b, uint64(m.firstTS-w.start))
						continue
					}
					for _, v := range [...]float64{m.sum, m.min, m.max, m.first, m.last} {
						b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
					}
					b = binary.AppendUvarint(b, uint64(m.firstTS-w.start))
					b = binary.AppendUvarint(b, uint64(m.lastTS-w.start))
					b = binary.AppendUvarint(b, uint64(m.sumExp))
				}
			}
		}
		cutoff := s.forgetCutoff(d)
		b = appendSeen(b, d.dated.all(), d.dated.len(), 4, d.maxTS, cutoff)
		b = appendSeen(b, d.undated.all(), len(d.undated.entries), 8, d.maxTS, cutoff)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// appendSeen appends the identities of set from cutoff on (those before may
// be forgotten at any time, so a canonical encoding leaves them out), their
// event times relative to prev, then to each other; each identity in width
// bytes (4 or 8).
func appendSeen(b []byte, entries iter.Seq2[int64, uint64], n int, width int, prev, cutoff int64) []byte {
	for ts := range entries {
		if ts >= cutoff {
			break
		}
		n--
	}
	b = binary.AppendUvarint(b, uint64(n))
	for ts, id := range entries {
		if ts < cutoff {
			continue
		}
		b = binary.AppendVarint(b, ts-prev)
		if width == 4 {
			b = binary.BigEndian.AppendUint32(b, uint32(id))
		} else {
			b = binary.BigEndian.AppendUint64(b, id)
		}
		prev = ts
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// UnmarshalBinary replaces the contents of s by the checkpoint data, as Load
// does, without reporting a change of configuration.
func (s *State) UnmarshalBinary(data []byte) error {
	_, err := s.Load(data)
	return err
}

// Load replaces the contents of s by the checkpoint data. Into a State made
// by NewState, the checkpoint is carried over to the State's configuration
// (package comment, "Changing the configuration"), and Load reports what
// that changed; into a zero State, it takes the checkpoint's configuration.
// On error s is unchanged. Every field is checked, so a damaged or hostile
// checkpoint yields an error, never a State that breaks later. Every earlier
// version loads (checkpointMagic).
func (s *State) Load(data []byte) (Reconfiguration, error) {
	prefix := len(checkpointMagic) - 1
	if len(data) < len(checkpointMagic)+4 || string(data[:prefix]) != checkpointMagic[:prefix] ||
		data[prefix] < 1 || data[prefix] > checkpointVersion {
		return Reconfiguration{}, fmt.Errorf("window checkpoint: bad header: %w", ErrCheckpoint)
	}
	body := data[:len(data)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(data[len(body):]) {
		return Reconfiguration{}, fmt.Errorf("window checkpoint: checksum mismatch: %w", ErrCheckpoint)
	}
	next, err := decodeStateBody(body[len(checkpointMagic):], data[prefix])
	if err != nil {
		return Reconfiguration{}, err
	}
	var r Reconfiguration
	if s.sizes != nil {
		r = next.reconfigure(s.cfg)
	}
	*s = *next
	return r, nil
}

// decoder reads a checkpoint body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("window checkpoint: "+format+": %w", append(args, ErrCheckpoint)...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("truncated or overlong number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of items, each taking at least minBytes, so that
// junk cannot make the decoder allocate more than the input justifies.
func (d *decoder) count(what string, minBytes int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/minBytes) {
		d.fail("%d %s do not fit in %d bytes", n, what, len(d.b))
		return 0
	}
	return int(n)
}

// ms reads a non-negative number of milliseconds no larger than limit.
func (d *decoder) ms(what string, limit time.Duration) time.Duration {
	v := d.uvarint()
	if v > uint64(limit.Milliseconds()) {
		d.fail("%s %d ms out of range", what, v)
		return 0
	}
	return time.Duration(v) * time.Millisecond
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("truncated value")
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// finite reads a value, which must be finite as every reading's values are.
func (d *decoder) finite(what string) float64 {
	v := d.float()
	if d.err == nil && (math.IsInf(v, 0) || math.IsNaN(v)) {
		d.fail("%s %g is not finite", what, v)
	}
	return v
}

func (d *decoder) name(what string) string {
	n := d.count(what, 1)
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	if !reading.ValidName(s) {
		d.fail("%s %q is not a valid name", what, reading.Truncate(s, 80))
	}
	return s
}

// inRange reads a signed number within [lo, hi].
func (d *decoder) inRange(what string, lo, hi int64) int64 {
	v := d.varint()
	if v < lo || v > hi {
		d.fail("%s %d out of range", what, v)
	}
	return v
}

// decodeStateBody decodes a checkpoint body (after the magic, before the
// CRC) of the given version into a new State.
func decodeStateBody(b []byte, version byte) (*State, error) {
	d := &decoder{b: b}
	var cfg Config
	nSizes := d.count("window sizes", 1)
	for range nSizes {
		cfg.Sizes = append(cfg.Sizes, d.ms("window size", MaxSize))
	}
	cfg.Lateness = d.ms("lateness", MaxLatenessWindows*MaxSize)
	cfg.IdleGrace = d.ms("idle grace", MaxIdleGrace)
	cfg.ForgetAfter = d.ms("forget after", MaxForgetAfter)
	if d.err != nil {
		return nil, d.err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("window checkpoint config: %w (%w)", ErrCheckpoint, err)
	}
	s := &State{floor: d.varint()}
	s.configure(cfg)

	names := make([]string, d.count("names", 2))
	for i := range names {
		names[i] = d.name("name")
		if d.err == nil && i > 0 && names[i] <= names[i-1] {
			d.fail("names not sorted")
		}
	}
	nameAt := func(what string) string {
		i := d.uvarint()
		if d.err == nil && i >= uint64(len(names)) {
			d.fail("%s index %d out of range", what, i)
		}
		if d.err != nil {
			return ""
		}
		return names[i]
	}

	nDevices := d.count("devices", 5)
	s.devices = make(map[deviceKey]*device, nDevices)
	var prev deviceKey
	for k := range nDevices {
		dev := &device{site: nameAt("site"), name: d.name("device")}
		key := deviceKey{dev.site, dev.name}
		if d.err == nil && k > 0 && (key.site < prev.site || key.site == prev.site && key.device <= prev.device) {
			d.fail("devices not sorted")
		}
		prev = key
		dev.maxTS = d.inRange("newest event time", MinTS, MaxTS)
		dev.lastRx = d.inRange("newest received time", 0, MaxTS)
		if version >= 2 {
			// The loaded State has listened for 0 so far.
			silence := d.uvarint()
			if d.err == nil && silence > uint64(maxListened) {
				d.fail("device %s/%s: silence %d ms out of range", dev.site, dev.name, silence)
			}
			dev.heardAt = -int64(silence)
		}
		if version >= 5 {
			dev.offset = d.inRange("clock offset", MinTS-MaxTS, MaxTS)
		}
		dev.sizes = make([]sizeState, len(s.sizes))
		for i, size := range s.sizes {
			ss := &dev.sizes[i]
			ss.closedUntil = d.varint()
			ss.since = noSince
			if version >= 4 {
				ss.since = decodeSince(d, ss.closedUntil, size)
			}
			ss.open = make([]*window, d.count("windows", 2))
			for j := range ss.open {
				w := decodeWindow(d, size, names, version)
				if d.err != nil {
					return nil, d.err
				}
				switch {
				case w.start+size <= ss.closedUntil:
					d.fail("device %s/%s: open window %d ends before closed-until %d", dev.site, dev.name, w.start, ss.closedUntil)
				case j > 0 && w.start <= ss.open[j-1].start:
					d.fail("device %s/%s: windows not sorted", dev.site, dev.name)
				}
				ss.open[j] = w
				s.open++
			}
		}
		if version >= 6 {
			cutoff := s.forgetCutoff(dev)
			decodeSeen(d, dev, 4, cutoff, func(ts int64, id uint64) { dev.dated.insert(ts, uint32(id)) })
			decodeSeen(d, dev, 8, cutoff, func(ts int64, id uint64) {
				dev.undated.entries = append(dev.undated.entries, seenEntry{ts, id})
			})
			dev.undated.reindex()
		}
		if d.err != nil {
			return nil, d.err
		}
		s.devices[key] = dev
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// decodeSeen decodes identities of dev, width bytes each (appendSeen), and
// passes them to add; they must be sorted, unique and from cutoff on.
func decodeSeen(d *decoder, dev *device, width int, cutoff int64, add func(ts int64, id uint64)) {
	n := d.count("identities", 1+width)
	var prevTS int64
	var prevID uint64
	for i := range n {
		ts := dev.maxTS
		if i > 0 {
			ts = prevTS
		}
		ts += d.inRange("identity time", MinTS-MaxTS, MaxTS-MinTS)
		if d.err == nil && len(d.b) < width {
			d.fail("truncated identity")
		}
		if d.err != nil {
			return
		}
		var id uint64
		if width == 4 {
			id = uint64(binary.BigEndian.Uint32(d.b))
		} else {
			id = binary.BigEndian.Uint64(d.b)
		}
		d.b = d.b[width:]
		switch {
		case ts < cutoff || ts > MaxTS:
			d.fail("device %s/%s: identity time %d out of range", dev.site, dev.name, ts)
		case i > 0 && (ts < prevTS || ts == prevTS && id <= prevID):
			d.fail("device %s/%s: identities not sorted", dev.site, dev.name)
		}
		if d.err != nil {
			return
		}
		add(ts, id)
		prevTS, prevID = ts, id
	}
}

// decodeSince decodes the since mark of a length size whose closed-until
// mark is closedUntil.
func decodeSince(d *decoder, closedUntil, size int64) int64 {
	v := d.uvarint()
	if d.err != nil || v == 0 {
		return noSince
	}
	lo := windowStart(MinTS, size)
	if closedUntil < lo || v-1 > uint64(closedUntil-lo) {
		d.fail("since %d before closed-until %d out of range", v-1, closedUntil)
		return noSince
	}
	since := closedUntil - int64(v-1)
	if windowStart(since, size) != since {
		d.fail("since %d not aligned to %d ms", since, size)
	}
	return since
}

// decodeWindow decodes one open window of length size.
func decodeWindow(d *decoder, size int64, names []string, version byte) *window {
	w := &window{start: d.inRange("window start", windowStart(MinTS, size), MaxTS)}
	if d.err == nil && windowStart(w.start, size) != w.start {
		d.fail("window start %d not aligned to %d ms", w.start, size)
	}
	n := d.count("metrics", 11)
	if d.err == nil && n == 0 {
		d.fail("window %d has no metrics", w.start)
	}
	w.metrics = make([]metricStats, n)
	prevIdx := -1
	offset := func(what string) int64 {
		v := d.uvarint()
		if d.err == nil && v >= uint64(size) {
			d.fail("%s offset %d outside the window", what, v)
		}
		return w.start + int64(v)
	}
	for i := range w.metrics {
		idx := d.uvarint()
		if d.err == nil && (idx >= uint64(len(names)) || int(idx) <= prevIdx) {
			d.fail("metric index %d out of range or not sorted", idx)
		}
		if d.err != nil {
			return w
		}
		prevIdx = int(idx)
		m := &w.metrics[i]
		m.name = names[idx]
		count := d.uvarint()
		if d.err == nil && (count == 0 || count > math.MaxInt64) {
			d.fail("metric count %d out of range", count)
		}
		m.count = int64(count)
		if count == 1 {
			v := d.finite("value")
			m.sum, m.min, m.max, m.first, m.last = v, v, v, v, v
			m.firstTS = offset("first")
			m.lastTS = m.firstTS
			continue
		}
		m.sum = d.float()
		m.min, m.max, m.first, m.last = d.finite("min"), d.finite("max"), d.finite("first"), d.finite("last")
		m.firstTS = offset("first")
		m.lastTS = offset("last")
		if d.err == nil && m.firstTS > m.lastTS {
			d.fail("first time after last time")
		}
		switch {
		case version >= 3:
			m.sumExp = int(d.uvarint())
			if d.err == nil && (m.sumExp > maxSumExp || math.IsInf(m.sum, 0) || math.IsNaN(m.sum)) {
				d.fail("sum %g × 2^%d out of range", m.sum, m.sumExp)
			}
		case math.IsInf(m.sum, 0):
			// Before version 3 a sum could overflow; it goes on from the
			// largest finite sum of its sign.
			m.sum = math.Copysign(math.MaxFloat64, m.sum)
		case math.IsNaN(m.sum):
			d.fail("sum is not a number")
		}
	}
	return w
}
