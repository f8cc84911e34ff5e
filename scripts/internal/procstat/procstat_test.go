package procstat

import (
	"os"
	"testing"
)

func TestParseMachineBusy(t *testing.T) {
	stat := "cpu  1000 50 300 9000 200 10 20 5 0 0\ncpu0 500 25 150 4500 100 5 10 3 0 0\n"
	got, err := ParseMachineBusy([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal = 1385 ticks; idle and iowait left out.
	if got != 13.85 {
		t.Errorf("got %v s, want 13.85", got)
	}
	if _, err := ParseMachineBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("no cpu line: no error")
	}
}

func TestParseStat(t *testing.T) {
	// Field 2 may hold spaces and parentheses.
	stat := "4242 (proc (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 1000 123456789 2560 18446744073709551615"
	p, err := Parse([]byte(stat), 4096)
	if err != nil {
		t.Fatal(err)
	}
	if p.CPUSeconds != 3 || p.RSSBytes != 2560*4096 {
		t.Errorf("got %+v, want 3 s and %d bytes", p, 2560*4096)
	}
	if _, err := Parse([]byte("1 (x) S 1"), 4096); err == nil {
		t.Error("short stat: no error")
	}
}

func TestParseSmapsRollup(t *testing.T) {
	in := "5652390af000-7ffc55744000 ---p 00000000 00:00 0                          [rollup]\n" +
		"Rss:                1744 kB\nPss:                 299 kB\nPss_Dirty:           116 kB\nShared_Clean:       1440 kB\n"
	m, err := ParseSmapsRollup([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSBytes != 1744<<10 || m.PSSBytes != 299<<10 {
		t.Errorf("got %+v", m)
	}
	if _, err := ParseSmapsRollup([]byte("Rss: 10 kB\n")); err == nil {
		t.Error("no Pss line: no error")
	}
}

func TestReadOwnProcess(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.PSSBytes <= 0 || m.PSSBytes > m.RSSBytes || s.RSSBytes <= 0 {
		t.Errorf("this test process: %+v %+v", m, s)
	}
}
