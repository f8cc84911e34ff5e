package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// goBuildFlags make static, reproducible binaries: no cgo, no file system
// paths and no VCS stamp in the binary (the image labels carry the
// revision, and GoBuild's stamp puts it in the binary: one per commit, not
// per build), no symbol tables.
var goBuildFlags = []string{"-trimpath", "-buildvcs=false"}

// GoBuild builds the packages (relative to dir, e.g. ./ingest) for every
// platform into out/<platform>/, one `go build` per platform and at most
// jobs at a time; each go build already uses every core for its packages.
// stamp is more -ldflags, the -X flags of the build's version
// (service.StampFlags). It returns the output directory per platform.
func GoBuild(ctx context.Context, log *slog.Logger, dir, out string, pkgs []string, platforms []Platform, jobs int, stamp string) (map[Platform]string, error) {
	dirs := make(map[Platform]string, len(platforms))
	for _, p := range platforms {
		dirs[p] = filepath.Join(out, p.Dir())
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(jobs, 1))
	for _, p := range platforms {
		g.Go(func() error {
			if err := os.MkdirAll(dirs[p], 0o755); err != nil {
				return err
			}
			start := time.Now()
			args := append([]string{"build"}, goBuildFlags...)
			args = append(args, "-ldflags=-s -w "+stamp, "-o", dirs[p]+string(filepath.Separator))
			args = append(args, pkgs...)
			cmd := exec.CommandContext(ctx, "go", args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			cmd.Env = append(cmd.Env, p.GoEnv()...)
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("go build for %s: %w\n%s", p, err, strings.TrimSpace(stderr.String()))
			}
			log.Info("built binaries", "platform", p.String(), "packages", len(pkgs), "took", time.Since(start).Round(time.Millisecond))
			return nil
		})
	}
	return dirs, g.Wait()
}
