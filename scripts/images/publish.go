package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Built is one finished image: what images.json lists.
type Built struct {
	Name      string          `json:"name"`
	Ref       string          `json:"ref"`
	Digest    string          `json:"digest"` // of the image index
	Tarball   string          `json:"tarball,omitempty"`
	Platforms []BuiltPlatform `json:"platforms"`

	index v1.ImageIndex
}

// BuiltPlatform is one platform's image in an index.
type BuiltPlatform struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"` // of the platform's manifest
	// CompressedSize is what a node pulls: manifest, config and gzip'd layers.
	CompressedSize int64 `json:"compressed_size"`
}

// Push uploads the index, its images and their blobs to the registry of ref.
// Credentials come from the Docker config (~/.docker/config.json), as with
// docker and crane; insecure allows a plain-HTTP registry.
func Push(ctx context.Context, ref string, idx v1.ImageIndex, insecure bool) error {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return fmt.Errorf("reference %q: %w", ref, err)
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// Load imports tarballs into the dev cluster's containerd with the kit's
// load-image.sh (`ctr -n k8s.io images import`).
func Load(ctx context.Context, root string, tarballs []string) error {
	args := append([]string{filepath.Join(root, "scripts", "devcluster", "load-image.sh")}, tarballs...)
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("load into the dev cluster (scripts/devcluster/load-image.sh): %w", err)
	}
	return nil
}

// WriteReport writes images.json.
func WriteReport(path string, built []Built) error {
	b, err := json.MarshalIndent(built, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
