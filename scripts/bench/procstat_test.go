package main

import "testing"

func TestParseMachineBusy(t *testing.T) {
	stat := "cpu  1000 50 300 9000 200 10 20 5 0 0\ncpu0 500 25 150 4500 100 5 10 3 0 0\n"
	got, err := parseMachineBusy([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal = 1385 ticks; idle and iowait left out.
	if got != 13.85 {
		t.Errorf("got %v s, want 13.85", got)
	}
	if _, err := parseMachineBusy([]byte("intr 1 2 3\n")); err == nil {
		t.Error("no cpu line: no error")
	}
}
