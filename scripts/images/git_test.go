package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestGitRevisionTagsCleanAndDirtyTrees(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
			"GIT_AUTHOR_DATE=@1700000000 +0000", "GIT_COMMITTER_DATE=@1700000000 +0000")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("init", "-q")
	write("one\n")
	run("add", "a.txt")
	run("commit", "-q", "-m", "one")
	head := run("rev-parse", "HEAD")

	rev, err := GitRevision(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Commit != head || rev.Tag != head[:12] || rev.Committed.Unix() != 1700000000 {
		t.Fatalf("clean tree: %+v, want commit %s, tag %s, committed at 1700000000", rev, head, head[:12])
	}

	// An untracked file is not part of `git diff HEAD`: still clean.
	if err := os.WriteFile(filepath.Join(dir, "new.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rev, _ := GitRevision(t.Context(), dir); rev.Tag != head[:12] {
		t.Errorf("with an untracked file: tag %s", rev.Tag)
	}

	write("two\n")
	rev, err = GitRevision(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	// The same as the shell's: git diff HEAD | sha256sum | cut -c1-8
	sum := sha256.Sum256([]byte(run("diff", "HEAD") + "\n"))
	want := head[:12] + "-dirty-" + hex.EncodeToString(sum[:])[:8]
	if rev.Tag != want {
		t.Errorf("dirty tree: tag %s, want %s", rev.Tag, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}-dirty-[0-9a-f]{8}$`).MatchString(rev.Tag) {
		t.Errorf("tag %s has the wrong shape", rev.Tag)
	}
	write("three\n")
	if rev2, _ := GitRevision(t.Context(), dir); rev2.Tag == rev.Tag {
		t.Errorf("two different edits share the tag %s", rev.Tag)
	}
	write("two\n")
	if rev3, _ := GitRevision(t.Context(), dir); rev3.Tag != rev.Tag {
		t.Errorf("the same edit gave %s, then %s", rev.Tag, rev3.Tag)
	}
}
