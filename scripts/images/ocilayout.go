package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on index.json's entry that name the image on import.
//
// containerd's `ctr images import` (1.6 and 1.7, also as `k3s ctr images
// import`) stores an entry under io.containerd.image.name as it is; without
// it, it treats org.opencontainers.image.ref.name as a tag to prefix with
// "import-<date>" and drops full names, so the image would not be found by
// its reference. The OCI annotation carries the tag, as Docker and BuildKit
// write it, for tools that read only that.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// WriteOCIArchive writes idx as an OCI image-layout tarball (oci-layout,
// index.json, blobs/sha256/...) whose single index.json entry is the image
// index, annotated with ref. Entries are sorted, owned by root and dated at
// the epoch, so the same images give the same bytes.
func WriteOCIArchive(w io.Writer, ref name.Tag, idx v1.ImageIndex) error {
	blobs := map[string][]byte{}
	if err := collectBlobs(idx, blobs); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	top := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIImageIndex,
			Digest:    d,
			Size:      int64(len(raw)),
			Annotations: map[string]string{
				annotationContainerdName: ref.Name(),
				annotationRefName:        ref.TagStr(),
			},
		}},
	}
	indexJSON, err := json.Marshal(top)
	if err != nil {
		return err
	}

	names := make([]string, 0, len(blobs))
	for n := range blobs {
		names = append(names, n)
	}
	sort.Strings(names)

	tw := tar.NewWriter(w)
	dir := func(n string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(n string, b []byte) error {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	for _, n := range names {
		if err := file("blobs/sha256/"+n, blobs[n]); err != nil {
			return fmt.Errorf("write blob %s: %w", n, err)
		}
	}
	if err := file("index.json", indexJSON); err != nil {
		return err
	}
	if err := file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	return tw.Close()
}

// WriteOCIArchiveFile writes the archive to path through a temporary file,
// so an interrupted build never leaves a truncated tarball behind.
func WriteOCIArchiveFile(path string, ref name.Tag, idx v1.ImageIndex) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := WriteOCIArchive(tmp, ref, idx); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// collectBlobs adds every blob an index refers to, recursively, keyed by
// the hex of its sha256 digest.
func collectBlobs(idx v1.ImageIndex, blobs map[string][]byte) error {
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	blobs[d.Hex] = raw
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, desc := range im.Manifests {
		switch {
		case desc.MediaType.IsIndex():
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return err
			}
			if err := collectBlobs(child, blobs); err != nil {
				return err
			}
		case desc.MediaType.IsImage():
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return err
			}
			if err := collectImageBlobs(img, blobs); err != nil {
				return fmt.Errorf("image %s: %w", desc.Digest, err)
			}
		default:
			return fmt.Errorf("index entry %s: unexpected media type %s", desc.Digest, desc.MediaType)
		}
	}
	return nil
}

func collectImageBlobs(img v1.Image, blobs map[string][]byte) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	blobs[d.Hex] = raw
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cd, err := img.ConfigName()
	if err != nil {
		return err
	}
	blobs[cd.Hex] = cfg
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return err
		}
		if _, ok := blobs[ld.Hex]; ok {
			continue
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", ld, err)
		}
		blobs[ld.Hex] = b
	}
	return nil
}
