package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Revision is what the images record about the source they were built from.
type Revision struct {
	Commit    string    // full commit hash
	Tag       string    // default image tag, see DefaultTag
	Committed time.Time // commit time: the services' config "created" date
}

// GitRevision reads the revision of the work tree at dir.
//
// The default tag is the commit's 12-hex short hash; when tracked files
// differ from HEAD it gets "-dirty-" and the first 8 hex of the sha256 of
// `git diff HEAD`, so two different dirty trees never share a tag while the
// same edit always gives the same one. Untracked files are not part of it,
// as they are not part of `git diff HEAD` (commit or add them first).
func GitRevision(ctx context.Context, dir string) (Revision, error) {
	commit, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return Revision{}, err
	}
	short, err := git(ctx, dir, "rev-parse", "--short=12", "HEAD")
	if err != nil {
		return Revision{}, err
	}
	ct, err := git(ctx, dir, "log", "-1", "--format=%ct", "HEAD")
	if err != nil {
		return Revision{}, err
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(string(ct)), 10, 64)
	if err != nil {
		return Revision{}, fmt.Errorf("commit time %q: %w", ct, err)
	}
	diff, err := git(ctx, dir, "diff", "--no-color", "--no-ext-diff", "HEAD")
	if err != nil {
		return Revision{}, err
	}
	return Revision{
		Commit:    strings.TrimSpace(string(commit)),
		Tag:       TagFor(strings.TrimSpace(string(short)), diff),
		Committed: time.Unix(secs, 0).UTC(),
	}, nil
}

// TagFor is the tag of a commit's short hash with the work tree's diff
// against it (empty for a clean tree).
func TagFor(short string, diff []byte) string {
	if len(diff) == 0 {
		return short
	}
	sum := sha256.Sum256(diff)
	return short + "-dirty-" + hex.EncodeToString(sum[:])[:8]
}

// RepoRoot is the top of the git work tree containing dir.
func RepoRoot(ctx context.Context, dir string) (string, error) {
	out, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func git(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
