package alerts

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	a, err := Parse([]byte(`{"rule":"hot","site":"lab","device":"t1","state":"firing","severity":"critical","value":41.5,"threshold":40,"since":"2026-11-25T10:00:00Z","at":1795600000123}`), 7)
	if err != nil {
		t.Fatal(err)
	}
	if a.Key() != "lab/t1/hot" || a.State != Firing || *a.Value != 41.5 || *a.Threshold != 40 || a.Seq != 7 ||
		a.Since != time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMilli() || a.At != 1795600000123 {
		t.Fatalf("Parse = %+v", a)
	}
	secs, err := Parse([]byte(`{"rule":"r","site":"s","device":"d","state":"resolved","at":1795600000}`), 1)
	if err != nil || secs.At != 1795600000000 {
		t.Fatalf("seconds: %+v %v", secs, err)
	}
	for _, bad := range []string{
		`{"rule":"<img src=x>","site":"s","device":"d","state":"firing"}`,
		`{"rule":"r","site":"s.x","device":"d","state":"firing"}`,
		`{"rule":"r","site":"s","device":"d","state":"exploded"}`,
		`{"rule":"r","site":"s","device":"d","state":"firing","severity":"<b>"}`,
		`{"rule":"r","site":"s","device":"d","state":"firing","at":"yesterday"}`,
		`not json`,
	} {
		if _, err := Parse([]byte(bad), 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%s) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestBook(t *testing.T) {
	b := NewBook(3, 4)
	mk := func(rule, state string, seq uint64) Alert {
		return Alert{Rule: rule, Site: "lab", Device: "t1", State: state, Seq: seq}
	}
	b.Apply(mk("hot", Pending, 1))
	b.Apply(mk("hot", Firing, 2))
	b.Apply(mk("cold", Firing, 3))
	if b.Apply(mk("hot", Pending, 1)) {
		t.Fatal("an older change replaced a newer state")
	}
	s := b.Snapshot(true)
	if len(s.Firing) != 2 || s.Firing[0].Rule != "cold" || len(s.Pending) != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	if len(s.History) != 3 || s.History[0].Seq != 3 {
		t.Fatalf("history %+v", s.History)
	}
	b.Apply(mk("cold", Resolved, 4))
	b.Apply(mk("a", Firing, 5))
	b.Apply(mk("b", Firing, 6)) // 4 alerts > 3: the resolved one goes
	s = b.Snapshot(true)
	if len(s.Resolved) != 0 || len(s.Firing) != 3 {
		t.Fatalf("after eviction %+v", s)
	}
	if len(s.History) != 4 || s.History[0].Seq != 6 || s.History[3].Seq != 3 {
		t.Fatalf("history not bounded/ordered: %+v", s.History)
	}
}
