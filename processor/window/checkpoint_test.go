package window

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeflow/edgeflow/internal/reading"
)

// withCRC appends the checksum to a checkpoint body (magic included).
func withCRC(body []byte) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
}

// sampleState has several devices, several open windows per length,
// single-value metrics, -0, a sum beyond the float64 range, a forget floor,
// and identities of readings folded, one of them dated ahead of its
// device's time.
func sampleState(t testing.TB) *State {
	s := NewState(testConfig())
	s.floor = t0 - 3_600_000
	for i, ts := range []int64{t0 + 11_000, t0 + 7_000, t0 + 13_000} {
		seq := uint64(i)
		s.Add(reading.Reading{Site: "yard", Device: "y", TS: ts, Received: t0 + 10_000, Seq: &seq, DeviceTime: true,
			Metrics: map[string]float64{"t": float64(i)}})
	}
	s.Add(temp(t0+12_000, 1.5))
	s.Add(temp(t0+12_000, 2.25))
	s.Add(temp(t0+8_000, -7))
	s.Add(rd("lab", "big", t0+1, map[string]float64{"x": math.MaxFloat64, "y": 1}))
	s.Add(rd("lab", "big", t0+2, map[string]float64{"x": math.MaxFloat64}))
	s.Add(rd("lab", "zero", t0+3, map[string]float64{"t": math.Copysign(0, -1)}))
	r := rd("plant", "d1", t0-5, map[string]float64{"t": 3})
	r.Received = t0 + 40_000
	s.Add(r)
	if s.Open() != 12 || s.devices[deviceKey{"yard", "y"}].dated.len() != 3 {
		t.Fatalf("sample has %d windows", s.Open())
	}
	return s
}

func TestCheckpointRoundTrip(t *testing.T) {
	s := sampleState(t)
	loaded := roundTrip(t, s) // re-encoding a loaded checkpoint gives the same bytes
	if loaded.floor != s.floor || loaded.Open() != s.Open() || loaded.Devices() != s.Devices() {
		t.Fatalf("loaded floor %d, %d windows, %d devices; saved %d, %d, %d",
			loaded.floor, loaded.Open(), loaded.Devices(), s.floor, s.Open(), s.Devices())
	}
	// Same future: the same late reading, the same duplicate and the same
	// results, bit for bit.
	for _, st := range []*State{s, loaded} {
		if late, _ := st.Add(temp(t0+1_000, 4)); len(late) != 0 {
			t.Fatalf("late %v", late)
		}
		seq := uint64(1)
		if _, dup := st.Add(reading.Reading{Site: "yard", Device: "y", TS: t0 + 7_000, Seq: &seq, DeviceTime: true,
			Metrics: map[string]float64{"t": 1}}); !dup {
			t.Fatal("replay not a duplicate")
		}
	}
	want, got := fingerprint(flushAll(s)), fingerprint(flushAll(loaded))
	if got != want {
		t.Fatalf("after loading:\n%s\nwant:\n%s", got, want)
	}
	for _, sign := range []string{"x:2/7fefffffffffffff", "t:1/8000000000000000"} {
		if !strings.Contains(got, sign) {
			t.Errorf("results lost %q:\n%s", sign, got)
		}
	}
}

func TestCheckpointOfEmptyState(t *testing.T) {
	data, _ := NewState(testConfig()).MarshalBinary()
	s := NewState(testConfig())
	if err := s.UnmarshalBinary(data); err != nil || s.Devices() != 0 || s.floor != math.MinInt64 {
		t.Fatalf("err %v, devices %d, floor %d", err, s.Devices(), s.floor)
	}
}

func TestUnmarshalConfiguration(t *testing.T) {
	data, _ := sampleState(t).MarshalBinary()

	t.Run("into a zero State: takes the checkpoint's config", func(t *testing.T) {
		var s State
		if err := s.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		if c := s.Config(); c.Lateness != DefaultLateness || len(c.Sizes) != 2 || c.ForgetAfter != DefaultForgetAfter {
			t.Fatalf("config %+v", c)
		}
		if late, _ := s.Add(temp(t0+1_000, 1)); late != nil {
			t.Fatalf("late %v", late)
		}
	})
	t.Run("keeps the receiver's lateness", func(t *testing.T) {
		cfg := testConfig()
		cfg.Lateness = 0
		s := NewState(cfg)
		if err := s.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		if s.Config().Lateness != 0 || s.lateness != 0 {
			t.Fatalf("lateness %v", s.Config().Lateness)
		}
	})
	t.Run("other sizes: carried over", func(t *testing.T) {
		cfg := testConfig()
		cfg.Sizes = []time.Duration{10 * time.Second, time.Hour}
		s := NewState(cfg)
		r, err := s.Load(data)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Changed() || !slices.Equal(r.Added, []time.Duration{time.Hour}) || !slices.Equal(r.Removed, []time.Duration{time.Minute}) {
			t.Fatalf("reported %+v, want 1h added and 1m removed", r)
		}
		if !slices.Equal(s.Config().Sizes, cfg.Sizes) {
			t.Fatalf("sizes %v after loading, want the State's own %v", s.Config().Sizes, cfg.Sizes)
		}
	})
	t.Run("same configuration: no change reported", func(t *testing.T) {
		if r, err := NewState(testConfig()).Load(data); err != nil || r.Changed() {
			t.Fatalf("reported %+v, %v", r, err)
		}
	})
}

// cp builds checkpoint bodies by hand, to check what the decoder refuses.
type cp struct{ b []byte }

func newCP() *cp             { return &cp{b: []byte(checkpointMagic)} }
func (c *cp) u(v uint64) *cp { c.b = binary.AppendUvarint(c.b, v); return c }
func (c *cp) i(v int64) *cp  { c.b = binary.AppendVarint(c.b, v); return c }
func (c *cp) s(v string) *cp { c.b = appendString(c.b, v); return c }
func (c *cp) f(v float64) *cp {
	c.b = binary.BigEndian.AppendUint64(c.b, math.Float64bits(v))
	return c
}
func (c *cp) raw(v ...byte) *cp { c.b = append(c.b, v...); return c }
func (c *cp) bytes() []byte     { return withCRC(c.b) }
func (c *cp) config() *cp       { return c.u(2).u(10_000).u(60_000).u(5_000).u(5_000).u(86_400_000) }
func (c *cp) header() *cp       { return c.config().i(math.MinInt64) }

// device starts a device entry: site index, name, newest event and received
// times, silent for 0, clock offset 0.
func (c *cp) device(site uint64, name string, ts, rx int64) *cp {
	return c.u(site).s(name).i(ts).i(rx).u(0).i(0)
}

// length starts a length's entry: closed until, no since mark.
func (c *cp) length(closedUntil int64) *cp { return c.i(closedUntil).u(0) }

func (c *cp) names(n ...string) *cp {
	c.u(uint64(len(n)))
	for _, s := range n {
		c.s(s)
	}
	return c
}

// oneDevice is a valid body up to the first window's metrics: names
// ["lab", "t"], device lab/d1, a 10s window at t0 and no 1m window.
func oneDevice() *cp {
	return newCP().header().names("lab", "t").u(1).device(0, "d1", t0, t0).length(math.MinInt64).u(1).i(t0)
}

// oneWindow is a valid body up to the identities of lab/d1, whose newest
// event time is t0: its 10s length closed until t0 − 10s with one window at
// t0 holding t=1, its 1m length closed until t0 − 1m (so identities from
// t0 − 1m on).
func oneWindow() *cp {
	return newCP().header().names("lab", "t").u(1).device(0, "d1", t0, t0).
		length(t0 - 10_000).u(1).i(t0).u(1).u(1).u(1).f(1).u(0).length(t0 - 60_000).u(0)
}

func TestUnmarshalRefuses(t *testing.T) {
	valid, _ := sampleState(t).MarshalBinary()
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "bad header"},
		{"next version", append([]byte{'E', 'F', 'W', checkpointVersion + 1}, valid[4:]...), "bad header"},
		{"version 0", append([]byte("EFW\x00"), valid[4:]...), "bad header"},
		{"flipped bit", func() []byte { b := bytes.Clone(valid); b[len(b)/2] ^= 4; return b }(), "checksum"},
		{"truncated", valid[:len(valid)-1], "checksum"},
		{"no sizes", newCP().u(0).u(5_000).u(5_000).u(0).bytes(), "none given"},
		{"invalid lateness", newCP().u(1).u(10_000).u(10_000_000).u(0).u(0).bytes(), "lateness"},
		{"huge count", newCP().u(1 << 60).bytes(), "do not fit"},
		{"names not sorted", newCP().header().names("t", "lab").bytes(), "not sorted"},
		{"invalid name", newCP().header().names("a.b").bytes(), "not a valid name"},
		{"site index out of range", newCP().header().names("lab").u(1).u(1).s("d1").raw(make([]byte, 8)...).bytes(), "site index 1 out of range"},
		{"invalid device", newCP().header().names("lab").u(1).u(0).s("d 1").bytes(), "not a valid name"},
		{"devices not sorted", newCP().header().names("lab").u(2).
			device(0, "d2", t0, 0).length(0).u(0).length(0).u(0).u(0).u(0).
			device(0, "d1", t0, 0).length(0).u(0).length(0).u(0).u(0).u(0).bytes(), "not sorted"},
		{"event time out of range", newCP().header().names("lab").u(1).u(0).s("d1").i(MaxTS + 1).bytes(), "out of range"},
		{"negative received", newCP().header().names("lab").u(1).u(0).s("d1").i(t0).i(-1).bytes(), "out of range"},
		{"silence out of range", newCP().header().names("lab").u(1).u(0).s("d1").i(t0).i(0).u(1 << 61).bytes(), "silence"},
		{"clock offset out of range", newCP().header().names("lab").u(1).u(0).s("d1").i(t0).i(0).u(0).i(MaxTS + 1).bytes(), "clock offset"},
		{"window not aligned", newCP().header().names("lab", "t").u(1).device(0, "d1", t0, t0).length(0).u(1).i(t0 + 1).bytes(), "not aligned"},
		{"since out of range", newCP().header().names("lab").u(1).device(0, "d1", t0, t0).i(0).u(1 << 62).bytes(), "since"},
		{"since not aligned", newCP().header().names("lab").u(1).device(0, "d1", t0, t0).i(t0).u(2).bytes(), "since 1732559999999 not aligned"},
		{"window without metrics", oneDevice().u(0).bytes(), "no metrics"},
		{"zero count", oneDevice().u(1).u(1).u(0).raw(make([]byte, 16)...).bytes(), "count 0"},
		{"metric index out of range", oneDevice().u(1).u(2).u(1).f(1).u(0).bytes(), "index 2"},
		{"metrics not sorted", oneDevice().u(2).u(1).u(1).f(1).u(0).u(1).u(1).f(1).u(0).bytes(), "not sorted"},
		{"time outside the window", oneDevice().u(1).u(1).u(1).f(1).u(10_000).bytes(), "outside the window"},
		{"first after last", oneDevice().u(1).u(1).u(2).f(1).f(1).f(1).f(1).f(1).u(5).u(4).bytes(), "first time after last"},
		{"infinite value", oneDevice().u(1).u(1).u(1).f(math.Inf(1)).u(0).bytes(), "value +Inf is not finite"},
		{"NaN min", oneDevice().u(1).u(1).u(2).f(1).f(math.NaN()).f(1).f(1).f(1).u(0).u(0).u(0).bytes(), "min NaN is not finite"},
		{"infinite sum", oneDevice().u(1).u(1).u(2).f(math.Inf(1)).f(1).f(1).f(1).f(1).u(0).u(0).u(0).bytes(), "sum +Inf"},
		{"sum exponent too large", oneDevice().u(1).u(1).u(2).f(1).f(1).f(1).f(1).f(1).u(0).u(0).u(65).bytes(), "× 2^65 out of range"},
		{"truncated value", oneDevice().u(1).u(1).u(1).raw(1, 2, 3).bytes(), "do not fit"},
		{"window before closed-until", newCP().header().names("lab", "t").u(1).device(0, "d1", t0, t0).
			length(t0 + 10_000).u(1).i(t0).u(1).u(1).u(1).f(1).u(0).bytes(), "ends before closed-until"},
		{"trailing bytes", oneDevice().u(1).u(1).u(1).f(1).u(0).length(0).u(0).u(0).u(0).raw(0).bytes(), "trailing"},
		{"identities without device time not sorted", oneWindow().u(0).u(2).i(0).raw(0, 0, 0, 0, 0, 0, 0, 2).i(0).raw(0, 0, 0, 0, 0, 0, 0, 1).bytes(), "not sorted"},
		{"huge identity count", oneWindow().u(1 << 40).bytes(), "do not fit"},
		{"identities beyond the input", oneWindow().u(2).i(0).raw(make([]byte, 4)...).i(1).raw(1).bytes(), "do not fit"},
		{"truncated identity", oneWindow().u(1).i(-(1 << 50)).raw(1, 2).bytes(), "truncated identity"},
		{"identity time out of range", oneWindow().u(1).i(MaxTS).raw(make([]byte, 4)...).bytes(), "identity time"},
		{"identity before the closed windows", oneWindow().u(1).i(-60_001).raw(make([]byte, 4)...).bytes(), "identity time"},
		{"identities not sorted", oneWindow().u(2).i(0).raw(0, 0, 0, 2).i(0).raw(0, 0, 0, 1).bytes(), "not sorted"},
		{"identities repeated", oneWindow().u(2).i(0).raw(0, 0, 0, 1).i(0).raw(0, 0, 0, 1).bytes(), "not sorted"},
		{"identities going back in time", oneWindow().u(2).i(0).raw(0, 0, 0, 1).i(-1).raw(0, 0, 0, 2).bytes(), "not sorted"},
		{"identities of a reading with device time in 8 bytes", oneWindow().u(1).i(0).raw(0, 0, 0, 0, 0, 0, 0, 1).bytes(), "trailing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sampleState(t)
			before, _ := s.MarshalBinary()
			err := s.UnmarshalBinary(tt.data)
			if err == nil || !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrCheckpoint containing %q", err, tt.want)
			}
			if after, _ := s.MarshalBinary(); !bytes.Equal(after, before) {
				t.Fatal("a failed load changed the State")
			}
		})
	}
	// The hand-built bodies are otherwise valid.
	ok := oneDevice().u(1).u(1).u(1).f(1).u(0).length(0).u(0).u(0).u(0).bytes()
	if err := NewState(testConfig()).UnmarshalBinary(ok); err != nil {
		t.Fatalf("valid hand-built checkpoint refused: %v", err)
	}
	ok = oneWindow().u(2).i(-60_000).raw(0, 0, 0, 2).i(60_001).raw(0, 0, 0, 1).
		u(1).i(0).raw(0, 0, 0, 0, 0, 0, 0, 3).bytes()
	s := NewState(testConfig())
	if err := s.UnmarshalBinary(ok); err != nil {
		t.Fatalf("valid hand-built checkpoint with identities refused: %v", err)
	}
	d := s.devices[deviceKey{"lab", "d1"}]
	if dated := datedEntries(&d.dated); !slices.Equal(dated, []seenEntry{{t0 - 60_000, 2}, {t0 + 1, 1}}) || !slices.Equal(d.undated.entries, []seenEntry{{t0, 3}}) {
		t.Fatalf("identities %v and %v", dated, d.undated.entries)
	}
}

func TestUnmarshalEveryTruncationFails(t *testing.T) {
	valid, _ := sampleState(t).MarshalBinary()
	body := valid[:len(valid)-4]
	for n := range len(body) {
		// A correct checksum over a truncated body, so the decoder itself
		// must notice.
		if err := NewState(testConfig()).UnmarshalBinary(withCRC(body[:n])); err == nil {
			t.Fatalf("body truncated to %d of %d bytes accepted", n, len(body))
		}
	}
}

// FuzzStateRoundTrip checks that UnmarshalBinary never panics, and that
// whatever it accepts is a State that works, encodes canonically and loads
// back the same. fixCRC recomputes the checksum so mutations reach the
// decoder instead of stopping at the CRC.
func FuzzStateRoundTrip(f *testing.F) {
	empty, _ := NewState(testConfig()).MarshalBinary()
	sample, _ := sampleState(f).MarshalBinary()
	random := NewState(testConfig())
	run(random, randomSteps(9, 150))
	randomData, _ := random.MarshalBinary()
	for _, seed := range [][]byte{empty, sample, randomData, nil, []byte("EFW\x01"), []byte("{}"), bytes.Repeat([]byte{0xff}, 40)} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		if fixCRC && len(data) >= 4 {
			data = withCRC(data[:len(data)-4])
		}
		s := NewState(testConfig())
		if err := s.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("error %v does not wrap ErrCheckpoint", err)
			}
			return
		}
		once, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		loaded := NewState(testConfig())
		if err := loaded.UnmarshalBinary(once); err != nil {
			t.Fatalf("re-encoded checkpoint refused: %v", err)
		}
		if twice, _ := loaded.MarshalBinary(); !bytes.Equal(once, twice) {
			t.Fatal("encoding is not stable")
		}
		// The State works: adding and closing neither panics nor loses
		// the count of open windows.
		for dev := range s.devices {
			s.Add(reading.Reading{Site: dev.site, Device: dev.device, TS: t0, Metrics: map[string]float64{"t": 1}})
		}
		s.CloseDue(wall(t0), false)
		flushAll(s)
		if s.Open() != 0 {
			t.Fatalf("Open() = %d after flushing", s.Open())
		}
	})
}

// A version 1 checkpoint (before devices carried their silence) still
// loads; its devices start silent for 0, and it is saved as version 2.
func TestUnmarshalVersion1(t *testing.T) {
	v1 := &cp{b: []byte("EFW\x01")}
	// lab/d1, newest reading at t0+3s, one 10s window at t0 holding t=1.
	data := v1.header().names("lab", "t").u(1).u(0).s("d1").i(t0 + 3_000).i(t0 + 3_000).
		i(math.MinInt64).u(1).i(t0).u(1).u(1).u(1).f(1).u(3_000).
		i(math.MinInt64).u(0).bytes()
	s := NewState(testConfig())
	if err := s.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if s.Open() != 1 {
		t.Fatalf("%d windows open, want 1", s.Open())
	}
	s.Listen(16_999 * time.Millisecond)
	if got := s.CloseDue(wall(0), true); len(got) != 0 {
		t.Fatalf("closed before 17 s of silence:\n%s", fingerprint(got))
	}
	s.Listen(time.Millisecond)
	if got := s.CloseDue(wall(0), true); len(got) != 1 || got[0].Metrics["t"].Count != 1 {
		t.Fatalf("closed after 17 s of silence:\n%s", fingerprint(got))
	}
	if again, _ := s.MarshalBinary(); string(again[:len(checkpointMagic)]) != checkpointMagic {
		t.Fatalf("saved with header %q, want %q", again[:len(checkpointMagic)], checkpointMagic)
	}
}

// A version 2 checkpoint (before sums carried an exponent) still loads; a
// sum that overflowed to +Inf under that version goes on saturated, so the
// window's aggregates are finite.
func TestUnmarshalVersion2(t *testing.T) {
	v2 := &cp{b: []byte("EFW\x02")}
	// lab/d1, newest reading at t0+3s, silent for 0, one 10s window at t0
	// holding t = 1e308 twice (sum +Inf).
	data := v2.header().names("lab", "t").u(1).u(0).s("d1").i(t0 + 3_000).i(t0 + 3_000).u(0).
		i(math.MinInt64).u(1).i(t0).u(1).u(1).u(2).f(math.Inf(1)).f(1e308).f(1e308).f(1e308).f(1e308).u(0).u(3_000).
		i(math.MinInt64).u(0).bytes()
	s := NewState(testConfig())
	if err := s.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	s.Add(temp(t0+4_000, 1e308))
	got := flushAll(s)
	if len(got) != 2 {
		t.Fatalf("closed:\n%s", fingerprint(got))
	}
	st := find(t, got, "lab", "d1", "10s", t0).Metrics["t"]
	if st.Count != 3 || st.Sum != math.MaxFloat64 || math.IsInf(st.Mean, 0) {
		t.Fatalf("window %+v, want 3 values, a saturated sum and a finite mean", st)
	}
	if again, _ := s.MarshalBinary(); string(again[:len(checkpointMagic)]) != checkpointMagic {
		t.Fatalf("saved with header %q, want %q", again[:len(checkpointMagic)], checkpointMagic)
	}
}

// Checkpoints of versions 3 (before since marks), 4 (before clock offsets)
// and 5 (before identities) still load: no since mark, clock offset 0, no
// identities.
func TestUnmarshalVersions3To5(t *testing.T) {
	for _, version := range []byte{3, 4, 5} {
		c := &cp{b: []byte{'E', 'F', 'W', version}}
		// lab/d1, newest reading at t0+3s, one 10s window at t0 holding t=1.
		c.header().names("lab", "t").u(1).u(0).s("d1").i(t0 + 3_000).i(t0 + 3_000).u(0)
		if version >= 5 {
			c.i(-200) // clock offset
		}
		for _, start := range []int64{t0, -1} {
			c.i(math.MinInt64)
			if version >= 4 {
				c.u(0) // no since mark
			}
			if start < 0 {
				c.u(0)
				continue
			}
			c.u(1).i(start).u(1).u(1).u(1).f(1).u(3_000)
		}
		s := NewState(testConfig())
		if err := s.UnmarshalBinary(c.bytes()); err != nil {
			t.Fatalf("version %d: %v", version, err)
		}
		d := s.devices[deviceKey{"lab", "d1"}]
		wantOffset := int64(0)
		if version >= 5 {
			wantOffset = -200
		}
		if s.Open() != 1 || d.offset != wantOffset || d.sizes[0].since != noSince || d.sizes[1].since != noSince || d.dated.len()+d.undated.len() != 0 {
			t.Fatalf("version %d: %d windows, offset %d, since %d, %d, %d identities", version, s.Open(), d.offset,
				d.sizes[0].since, d.sizes[1].since, d.dated.len()+d.undated.len())
		}
		// A reading of the version's time is not known: it counts again.
		seq := uint64(1)
		if _, dup := s.Add(reading.Reading{Site: "lab", Device: "d1", TS: t0 + 3_000, Seq: &seq, DeviceTime: true,
			Metrics: map[string]float64{"t": 1}}); dup {
			t.Fatalf("version %d: a duplicate without identities", version)
		}
		if got := flushAll(s); len(got) != 2 || find(t, got, "lab", "d1", "10s", t0).Metrics["t"].Count != 2 {
			t.Fatalf("version %d: closed:\n%s", version, fingerprint(got))
		}
	}
}
