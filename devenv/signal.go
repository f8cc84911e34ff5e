package devenv

import (
	"fmt"
	"syscall"
)

// Pause stops the current run with SIGSTOP, as a process the kernel no
// longer schedules (a stalled VM, a debugger, a long GC pause): it keeps its
// connections and state but answers nothing until Resume. Chaos tests use it
// next to Kill.
func (p *Process) Pause() error {
	return p.sendStopCont(syscall.SIGSTOP)
}

// Resume continues a run stopped by Pause with SIGCONT.
func (p *Process) Resume() error {
	return p.sendStopCont(syscall.SIGCONT)
}

func (p *Process) sendStopCont(sig syscall.Signal) error {
	r := p.current()
	select {
	case <-r.done:
		return fmt.Errorf("%s (pid %d): %s: the process has exited", p.Name, r.cmd.Process.Pid, sig)
	default:
	}
	// Through os.Process (a pidfd), so a reaped and reused PID is never hit.
	if err := r.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s (pid %d): %s: %w", p.Name, r.cmd.Process.Pid, sig, err)
	}
	return nil
}
