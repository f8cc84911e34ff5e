package devenv

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// DefaultReadyTimeout bounds the wait for a process to become ready. The
	// slowest server, InfluxDB, is ready in 3-4 s; this leaves room for a
	// loaded CI machine.
	DefaultReadyTimeout = 30 * time.Second

	// DefaultStopTimeout is how long Stop waits after SIGTERM before it sends
	// SIGKILL. It is longer than a service's drain and InfluxDB's ~2 s
	// shutdown, and short enough that a hung process does not stall a test.
	DefaultStopTimeout = 15 * time.Second

	// readyPollInterval is how often readiness is probed: fast enough that a
	// test does not wait noticeably longer than the server.
	readyPollInterval = 50 * time.Millisecond

	// logTailBytes is how much of a log file an error quotes.
	logTailBytes = 4 << 10
)

// ProcessOptions describe a child process for StartProcess.
type ProcessOptions struct {
	// Name labels the process in errors and names its log file,
	// <Dir>/<Name>.log. Required.
	Name string
	// Bin is the executable: a path, or a name looked up in PATH. Required.
	Bin string
	// Args are the arguments after the executable.
	Args []string
	// Env is added to the current environment; an entry here overrides an
	// inherited variable of the same name.
	Env []string
	// Dir is the working directory and holds the log file, which collects
	// stdout and stderr of every run (restarts append). Created if missing.
	// Required.
	Dir string
	// WorkDir, when set, is the working directory instead of Dir (a program
	// that finds the repository from where it runs); the log stays in Dir.
	WorkDir string

	// Addr (host:port) and URL say where clients reach the process. They are
	// copied to the Process for the caller and not used otherwise.
	Addr string
	URL  string

	// ReadyURL, when set, is polled with GET until it answers 2xx.
	ReadyURL string
	// Ready, when set, is called (after ReadyURL answered) until it returns
	// nil. Without ReadyURL and Ready the process counts as ready once started.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds the wait for readiness; 0 means DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL; 0
	// means DefaultStopTimeout.
	StopTimeout time.Duration
}

// Process is a child process started by StartProcess. Its methods may be
// called from several goroutines, except that Restart must not run
// concurrently with itself.
type Process struct {
	Name    string
	Addr    string // see ProcessOptions.Addr
	URL     string // see ProcessOptions.URL
	LogPath string // stdout and stderr of all runs

	opts ProcessOptions

	mu  sync.Mutex
	cur *run
}

// run is one execution of a Process: Restart creates a new one.
type run struct {
	cmd      *exec.Cmd
	logStart int64         // offset of this run's output in the log file
	done     chan struct{} // closed after the process was reaped
	waitErr  error         // cmd.Wait's result, written before done is closed

	mu   sync.Mutex
	sent map[syscall.Signal]bool // signals devenv sent: exits by them are expected
}

// StartProcess starts a child process and waits until it is ready (see
// ProcessOptions.ReadyURL and Ready). ctx bounds only the start: the process
// lives until Stop or Kill, or until the current process dies, whichever
// comes first (it gets SIGKILL when its parent thread dies, see spawn). If the
// process exits or is not ready in time, it is killed and the error quotes the
// end of its log.
func StartProcess(ctx context.Context, opts ProcessOptions) (*Process, error) {
	switch {
	case opts.Name == "":
		return nil, errors.New("start process: no Name")
	case opts.Bin == "":
		return nil, fmt.Errorf("start %s: no Bin", opts.Name)
	case opts.Dir == "":
		return nil, fmt.Errorf("start %s: no Dir", opts.Name)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	p := &Process{
		Name:    opts.Name,
		Addr:    opts.Addr,
		URL:     opts.URL,
		LogPath: filepath.Join(opts.Dir, opts.Name+".log"),
		opts:    opts,
	}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// start runs the process once more with the same options and waits for it to
// be ready.
func (p *Process) start(ctx context.Context) error {
	bin, err := exec.LookPath(p.opts.Bin)
	if err == nil {
		// A relative path would be taken relative to Dir once the child runs.
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: open log: %w", p.Name, err)
	}
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: open log: %w", p.Name, err)
	}
	// A marker line tells the runs of a restarted process apart in its log.
	fmt.Fprintf(logFile, "--- devenv %s: %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(p.opts.Args, " "))

	cmd := exec.Command(bin, p.opts.Args...)
	cmd.Dir = cmp.Or(p.opts.WorkDir, p.opts.Dir)
	cmd.Env = append(os.Environ(), p.opts.Env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Dies with its parent, so a crashed test or orchestrator leaves
		// nothing behind.
		Pdeathsig: syscall.SIGKILL,
		// Its own process group: a Ctrl-C in the terminal reaches only the
		// orchestrator, which then stops its children in order.
		Setpgid: true,
	}
	r := &run{cmd: cmd, logStart: logStart, done: make(chan struct{}), sent: map[syscall.Signal]bool{}}
	if err := r.spawn(logFile); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.mu.Lock()
	p.cur = r
	p.mu.Unlock()

	if err := p.waitReady(ctx, r); err != nil {
		r.signal(syscall.SIGKILL)
		<-r.done
		return err
	}
	return nil
}

// spawn starts the command on a goroutine locked to its OS thread, which then
// waits for the process and closes done. Linux delivers Pdeathsig when the
// *thread* that forked the child exits, not the process; Go may end an OS
// thread whenever a goroutine locked to it exits. Forking from a locked thread
// that lives exactly as long as the child keeps Pdeathsig from firing early.
func (r *run) spawn(logFile *os.File) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logFile.Close()
		if err := r.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		r.waitErr = r.cmd.Wait()
		close(r.done)
	}()
	return <-started
}

// signal sends sig to the process, remembering that an exit by sig is
// expected. A process that already exited is not an error.
func (r *run) signal(sig syscall.Signal) {
	r.mu.Lock()
	r.sent[sig] = true
	r.mu.Unlock()
	// os.Process signals through a pidfd on Linux, so a reaped and reused
	// PID is never hit.
	_ = r.cmd.Process.Signal(sig)
}

// expected reports whether the run ended the way devenv asked it to: exit
// status 0, or death by a signal devenv sent.
func (r *run) expected() bool {
	if r.waitErr == nil {
		return true
	}
	var exitErr *exec.ExitError
	if !errors.As(r.waitErr, &exitErr) {
		return false
	}
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[ws.Signal()]
}

func (p *Process) current() *run {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Pid returns the process ID of the current (or last) run.
func (p *Process) Pid() int {
	return p.current().cmd.Process.Pid
}

// Done is closed when the current run has exited and been reaped.
func (p *Process) Done() <-chan struct{} {
	return p.current().done
}

// Stop sends SIGTERM and waits for the process to exit; after StopTimeout, or
// when ctx ends, it sends SIGKILL. It returns nil when the process exited with
// status 0 or by the SIGTERM, and otherwise an error with the end of the log,
// also when it had to be killed: a service that does not drain on SIGTERM is
// a bug worth a failing test. Stopping a process that already exited reports
// how it exited.
func (p *Process) Stop(ctx context.Context) error {
	r := p.current()
	select {
	case <-r.done:
		return p.result(r)
	default:
	}
	r.signal(syscall.SIGTERM)
	timer := time.NewTimer(p.opts.StopTimeout)
	defer timer.Stop()
	var why string
	select {
	case <-r.done:
		return p.result(r)
	case <-timer.C:
		why = fmt.Sprintf("did not exit within %s of SIGTERM", p.opts.StopTimeout)
	case <-ctx.Done():
		why = fmt.Sprintf("stop: %v", ctx.Err())
	}
	r.signal(syscall.SIGKILL)
	<-r.done
	return fmt.Errorf("%s (pid %d) %s; killed with SIGKILL%s", p.Name, r.cmd.Process.Pid, why, p.logTail(r))
}

// Kill sends SIGKILL and waits until the process is reaped, as a crash would
// end it. It returns nil unless the process had already exited on its own
// with a failure.
func (p *Process) Kill() error {
	r := p.current()
	r.signal(syscall.SIGKILL)
	<-r.done
	return p.result(r)
}

// Wait waits until the process exits by itself (or ctx ends) and reports how
// it exited, like Stop. Use it for a process that is expected to exit, such as
// a service refusing an invalid configuration.
func (p *Process) Wait(ctx context.Context) error {
	r := p.current()
	select {
	case <-r.done:
		return p.result(r)
	case <-ctx.Done():
		return fmt.Errorf("wait for %s (pid %d): %w", p.Name, r.cmd.Process.Pid, ctx.Err())
	}
}

// Restart stops the process (see Stop) and starts it again with the same
// options (same directory, ports and data), waiting until it is ready. The
// exit status of the previous run is not reported: call Stop first to check it.
func (p *Process) Restart(ctx context.Context) error {
	_ = p.Stop(ctx)
	return p.start(ctx)
}

// Log returns what the process wrote to its log file in all runs.
func (p *Process) Log() (string, error) {
	b, err := os.ReadFile(p.LogPath)
	return string(b), err
}

// result turns how a run ended into Stop's and Kill's error.
func (p *Process) result(r *run) error {
	if r.expected() {
		return nil
	}
	return fmt.Errorf("%s (pid %d) exited: %s%s", p.Name, r.cmd.Process.Pid, r.cmd.ProcessState, p.logTail(r))
}

// waitReady probes the process until it is ready, it exits, or the ready
// timeout (or ctx) ends.
func (p *Process) waitReady(ctx context.Context, r *run) error {
	if p.opts.ReadyURL == "" && p.opts.Ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.ReadyTimeout)
	defer cancel()
	began := time.Now()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()
	lastErr := errors.New("not probed yet")
	for {
		err := p.probe(ctx)
		if err == nil {
			// Another process on a port this one failed to bind answers the
			// probe too: ready means this process is still running.
			select {
			case <-r.done:
				return fmt.Errorf("%s (pid %d) exited, yet its ready probe answered (its port taken by another process?): %s%s", p.Name, r.cmd.Process.Pid, r.cmd.ProcessState, p.logTail(r))
			default:
				return nil
			}
		}
		if ctx.Err() == nil {
			// A probe cut short by the deadline says nothing new.
			lastErr = err
		}
		select {
		case <-r.done:
			return fmt.Errorf("%s (pid %d) exited before it was ready: %s%s", p.Name, r.cmd.Process.Pid, r.cmd.ProcessState, p.logTail(r))
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not ready after %s: %v%s", p.Name, r.cmd.Process.Pid, time.Since(began).Round(time.Millisecond), lastErr, p.logTail(r))
		case <-tick.C:
		}
	}
}

func (p *Process) probe(ctx context.Context) error {
	if p.opts.ReadyURL != "" {
		if err := ProbeHTTP(ctx, p.opts.ReadyURL); err != nil {
			return err
		}
	}
	if p.opts.Ready != nil {
		return p.opts.Ready(ctx)
	}
	return nil
}

// probeClient is used only for readiness probes; a probe that hangs longer
// than this is retried.
var probeClient = &http.Client{Timeout: 2 * time.Second}

// ProbeHTTP answers nil when GET url is 2xx; otherwise the error carries the
// status and the start of the body (a /readyz says what it waits for).
func ProbeHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// logTail returns the end of what run r wrote to the log, formatted to be
// appended to an error message.
func (p *Process) logTail(r *run) string {
	f, err := os.Open(p.LogPath)
	if err != nil {
		return fmt.Sprintf(" (log %s: %v)", p.LogPath, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf(" (log %s: %v)", p.LogPath, err)
	}
	from := max(r.logStart, info.Size()-logTailBytes)
	b, err := io.ReadAll(io.NewSectionReader(f, from, info.Size()-from))
	if err != nil {
		return fmt.Sprintf(" (log %s: %v)", p.LogPath, err)
	}
	text := strings.TrimRight(string(b), "\n")
	if from > r.logStart {
		// Start at a line boundary rather than mid-line.
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		}
	}
	return fmt.Sprintf("\n--- end of %s ---\n%s\n---", p.LogPath, text)
}
