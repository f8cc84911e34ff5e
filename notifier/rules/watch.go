package rules

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPoll is how often the watcher reads the file. Reading and hashing a
// small file every 2 s costs nothing measurable, and works where change
// notifications do not: a Kubernetes ConfigMap volume swaps a symlink, and
// some editors replace the file rather than write it.
const DefaultPoll = 2 * time.Second

// Status is what the watcher reports in /readyz and the logs.
type Status struct {
	File string `json:"file"`
	// Version and Rules describe the rules in effect (the last good file).
	Version  string    `json:"version,omitempty"`
	Rules    int       `json:"rules"`
	LoadedAt time.Time `json:"loaded_at,omitzero"`
	// Error is why the file as it is now is not in effect; the last good
	// rules, if any, still are.
	Error string `json:"error,omitempty"`
}

// Watcher keeps the last good version of a rules file in effect, reading the
// file again whenever its content changes. An invalid version is reported
// and ignored: the rules before it keep running.
type Watcher struct {
	path string
	env  func(string) (string, bool)
	log  *slog.Logger
	// OnChange, when set before Run, is called after every check that loaded
	// new rules or found a new problem.
	OnChange func(Status)

	current atomic.Pointer[Set]
	mu      sync.Mutex
	sum     [32]byte // content last parsed
	status  Status
}

// NewWatcher returns a watcher of the file at path; env looks up the
// environment variables the file names for secrets.
func NewWatcher(path string, env func(string) (string, bool), log *slog.Logger) *Watcher {
	return &Watcher{path: path, env: env, log: log, status: Status{File: path}}
}

// Rules returns the rules in effect, or nil before the file was first valid.
func (w *Watcher) Rules() *Set { return w.current.Load() }

// Status reports the rules in effect and the file's last problem.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// Run checks the file every poll until ctx ends.
func (w *Watcher) Run(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check()
		}
	}
}

// Check reads the file once and applies it if its content changed and is
// valid. It reports whether anything changed (new rules or a new problem).
func (w *Watcher) Check() bool {
	data, err := readFile(w.path)
	w.mu.Lock()
	defer w.mu.Unlock()
	var st Status
	if err != nil {
		w.sum = [32]byte{} // whatever appears next is new
		st = w.failed(fmt.Errorf("read rules: %w", err))
	} else {
		sum := sha256.Sum256(data)
		if sum == w.sum {
			return false
		}
		w.sum = sum
		set, err := Parse(w.path, data, w.env)
		if err != nil {
			st = w.failed(err)
		} else {
			w.current.Store(set)
			w.status = Status{File: w.path, Version: set.Version, Rules: len(set.Rules), LoadedAt: time.Now()}
			w.log.Info("rules loaded", "file", w.path, "version", set.Version, "rules", len(set.Rules), "channels", len(set.Channels))
			st = w.status
		}
	}
	if st == (Status{}) {
		return false
	}
	if w.OnChange != nil {
		w.OnChange(st)
	}
	return true
}

// failed records a problem with the file; it returns the new status, or the
// zero Status when the problem is the one already reported.
func (w *Watcher) failed(err error) Status {
	if w.status.Error == err.Error() {
		return Status{}
	}
	w.status.Error = err.Error()
	if w.current.Load() != nil {
		w.log.Error("rules file invalid; the last good rules stay in effect", "file", w.path,
			"version_in_effect", w.status.Version, "err", err)
	} else {
		w.log.Error("rules file invalid; no rules in effect", "file", w.path, "err", err)
	}
	return w.status
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than allowed, so Parse sees a file that is too large.
	return io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
}
