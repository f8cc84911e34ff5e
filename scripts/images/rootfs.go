package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// The image user: 65532 is distroless's "nonroot", a UID no host account
// has, so a container escaping to the host owns nothing there.
const (
	nonrootUID = 65532
	nonrootGID = 65532
)

// epoch is every file's mtime: layers depend on contents only, so the same
// binary gives the same layer digest on every machine and every commit.
var epoch = time.Unix(0, 0).UTC()

// File is one entry of an image layer.
type File struct {
	Path     string      // absolute path in the image, e.g. /etc/passwd
	Mode     fs.FileMode // permission bits plus fs.ModeDir, fs.ModeSticky
	UID, GID int
	Data     []byte // contents of a regular file
}

// Dir is a directory entry owned by root.
func Dir(p string, perm fs.FileMode) File { return File{Path: p, Mode: fs.ModeDir | perm} }

// Rootfs is the set of files of one layer, keyed by path. Parent
// directories are added as root-owned 0755 when the layer is written, unless
// given explicitly.
type Rootfs map[string]File

// Add puts f in the layer, replacing an entry at the same path.
func (r Rootfs) Add(f File) {
	f.Path = path.Clean("/" + f.Path)
	r[f.Path] = f
}

// AddFile copies a file from the host into the layer at dst with the given
// mode, following symlinks (an image must hold the real bytes).
func (r Rootfs) AddFile(src, dst string, perm fs.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s for %s: %w", src, dst, err)
	}
	r.Add(File{Path: dst, Mode: perm, Data: b})
	return nil
}

// Tar writes the layer as an uncompressed tar: entries sorted by path,
// parents before children, numeric owners, no user/group names, every
// mtime at the epoch. The same Rootfs always gives the same bytes.
func (r Rootfs) Tar() ([]byte, error) {
	all := map[string]File{}
	for p, f := range r {
		if p == "/" {
			return nil, fmt.Errorf("layer entry %q: the root is implicit", p)
		}
		if f.Mode.IsDir() && f.Data != nil {
			return nil, fmt.Errorf("layer entry %s: a directory cannot have contents", p)
		}
		if !f.Mode.IsDir() && !f.Mode.IsRegular() {
			return nil, fmt.Errorf("layer entry %s: only files and directories are supported (mode %v)", p, f.Mode)
		}
		all[p] = f
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if e, ok := r[d]; !ok {
				all[d] = Dir(d, 0o755)
			} else if !e.Mode.IsDir() {
				return nil, fmt.Errorf("layer entry %s: parent %s is a file", p, d)
			}
		}
	}
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return lessPath(paths[i], paths[j]) })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := all[p]
		h := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    int64(f.Mode.Perm()),
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if f.Mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if f.Mode.IsDir() {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", p, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// lessPath orders paths component by component, so a directory always
// comes right before its contents.
func lessPath(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			return as[i] < bs[i]
		}
	}
	return len(as) < len(bs)
}

// Layer compresses the layer with gzip at the best ratio (images are pulled
// over slow edge links more often than they are built) into an OCI layer.
func (r Rootfs) Layer() (v1.Layer, error) {
	raw, err := r.Tar()
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	l := &gzipLayer{gz: gz.Bytes()}
	if l.digest, _, err = v1.SHA256(bytes.NewReader(l.gz)); err != nil {
		return nil, err
	}
	if l.diffID, _, err = v1.SHA256(bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	return l, nil
}

// gzipLayer is a layer held in memory, compressed. (tarball.LayerFromOpener
// would do, but its descriptors carry an empty annotation map that makes
// validate.Image reject the manifests.)
type gzipLayer struct {
	gz             []byte
	digest, diffID v1.Hash
}

var _ v1.Layer = (*gzipLayer)(nil)

func (l *gzipLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *gzipLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *gzipLayer) Size() (int64, error)     { return int64(len(l.gz)), nil }
func (l *gzipLayer) MediaType() (types.MediaType, error) {
	return types.OCILayer, nil
}
func (l *gzipLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *gzipLayer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.gz))
}
