package rules

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const oneRule = "channels:\n  log: {type: log}\nrules:\n  - name: %s\n    type: offline\n    after: 30s\n    channels: [log]\n"

func write(t *testing.T, path, content string) {
	t.Helper()
	// Written beside and renamed, as a ConfigMap update or an editor does.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherKeepsLastGoodRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	var logs bytes.Buffer
	w := NewWatcher(path, lookup, slog.New(slog.NewJSONHandler(&logs, nil)))
	var changes []Status
	w.OnChange = func(s Status) { changes = append(changes, s) }

	// No file yet: no rules, and the reason.
	if !w.Check() || w.Rules() != nil || !strings.Contains(w.Status().Error, "no such file") {
		t.Fatalf("missing file: rules %v, status %+v", w.Rules(), w.Status())
	}
	if w.Check() {
		t.Fatal("the same missing file reported twice")
	}

	write(t, path, strings.ReplaceAll(oneRule, "%s", "first"))
	if !w.Check() || w.Rules() == nil || w.Rules().Rule("first") == nil || w.Status().Error != "" || w.Status().Rules != 1 {
		t.Fatalf("valid file: status %+v", w.Status())
	}
	good := w.Rules().Version
	if w.Check() {
		t.Fatal("an unchanged file counts as a change")
	}

	// A broken version keeps the rules in effect and says why, with the line.
	write(t, path, "channels:\n  log: {type: log}\nrules:\n  - name: second\n    type: offline\n    after: soon\n    channels: [log]\n")
	if !w.Check() {
		t.Fatal("broken file not noticed")
	}
	st := w.Status()
	if w.Rules().Rule("first") == nil || st.Version != good || !strings.Contains(st.Error, ":6: rules[0].after") {
		t.Fatalf("after a broken file: rule first kept %v, status %+v", w.Rules().Rule("first") != nil, st)
	}
	if !strings.Contains(logs.String(), "the last good rules stay in effect") {
		t.Fatalf("log:\n%s", logs.String())
	}

	// Fixed: the new rules replace the old.
	write(t, path, strings.ReplaceAll(oneRule, "%s", "third"))
	if !w.Check() || w.Rules().Rule("third") == nil || w.Rules().Rule("first") != nil || w.Status().Error != "" {
		t.Fatalf("fixed file: status %+v", w.Status())
	}
	if len(changes) != 4 {
		t.Fatalf("OnChange called %d times, want 4: %+v", len(changes), changes)
	}

	// Deleting the file keeps the rules too.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !w.Check() || w.Rules().Rule("third") == nil || w.Status().Error == "" {
		t.Fatalf("deleted file: status %+v", w.Status())
	}
}

func TestWatcherRunPicksUpChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yaml")
	write(t, path, strings.ReplaceAll(oneRule, "%s", "a"))
	w := NewWatcher(path, lookup, slog.New(slog.DiscardHandler))
	w.Check()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.Run(ctx, 10*time.Millisecond); close(done) }()
	write(t, path, strings.ReplaceAll(oneRule, "%s", "b"))
	deadline := time.Now().Add(5 * time.Second)
	for w.Rules().Rule("b") == nil {
		if time.Now().After(deadline) {
			t.Fatal("change not picked up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}
