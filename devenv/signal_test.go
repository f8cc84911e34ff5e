package devenv

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"
)

// procState is the state letter of /proc/<pid>/stat: R, S, T (stopped), Z...
func procState(t *testing.T, pid int) byte {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		t.Fatalf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	return stat[i+2]
}

func waitState(t *testing.T, pid int, want func(byte) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := procState(t, pid)
		if want(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: state %c, want %s", pid, s, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A paused process is stopped by the kernel and answers nothing; resumed, it
// serves again, and Stop still ends it by SIGTERM. A paused process can be
// killed; pausing one that exited is an error.
func TestProcessPauseResume(t *testing.T) {
	ctx := t.Context()
	p, err := startHelper(ctx, "svc", "serve", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stopOnCleanup(t, p)
	client := &http.Client{Timeout: 300 * time.Millisecond}
	ready := "http://" + p.Addr + "/readyz"

	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitState(t, p.Pid(), func(s byte) bool { return s == 'T' }, "T (stopped)")
	if resp, err := client.Get(ready); err == nil {
		resp.Body.Close()
		t.Fatalf("a paused process answered: %s", resp.Status)
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	waitState(t, p.Pid(), func(s byte) bool { return s != 'T' }, "running")
	resp, err := client.Get(ready)
	if err != nil {
		t.Fatalf("resumed process does not answer: %v", err)
	}
	resp.Body.Close()

	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatalf("kill a paused process: %v", err)
	}
	if err := p.Pause(); err == nil {
		t.Fatal("pausing an exited process did not fail")
	}
	if err := p.Restart(ctx); err != nil {
		t.Fatalf("restart after a paused kill: %v", err)
	}
}
