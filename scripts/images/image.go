package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// caBundle is where Debian keeps the CA bundle, and where Go's crypto/x509
// looks first on Linux: the images take it from the build host.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// Spec describes one image: its name, how it starts, and its own files.
// Every image has two layers: the shared base (users, CA bundle, /tmp) and
// the image's own files, so nodes and registries store the base once.
type Spec struct {
	Name       string // short name: ingest, nats, ...
	Ref        string // full reference: localhost/edgeflow/ingest:<tag>
	Entrypoint []string
	Cmd        []string
	Env        []string // PATH=/ and defaults that are not secret
	Ports      []string // documentation only, e.g. "4222/tcp"
	Labels     map[string]string
	Created    time.Time
	Platforms  []Platform
	// Files is the image's own layer for one platform.
	Files func(Platform) (Rootfs, error)
}

// BaseRootfs is the first layer of every image: /etc/passwd and /etc/group
// with root and the nonroot user the images run as, the host's CA bundle,
// nonroot's home, and an empty world-writable /tmp (pods mount an emptyDir
// there, since their root filesystem is read-only).
func BaseRootfs() (Rootfs, error) {
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no CA bundle at %s on this host: apt-get install ca-certificates", caBundle)
		}
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	uid, gid := strconv.Itoa(nonrootUID), strconv.Itoa(nonrootGID)
	r := Rootfs{}
	r.Add(File{Path: "/etc/passwd", Mode: 0o644, Data: []byte(
		"root:x:0:0:root:/root:/sbin/nologin\n" +
			"nonroot:x:" + uid + ":" + gid + ":nonroot:/home/nonroot:/sbin/nologin\n")})
	r.Add(File{Path: "/etc/group", Mode: 0o644, Data: []byte(
		"root:x:0:\n" +
			"nonroot:x:" + gid + ":\n")})
	r.Add(File{Path: caBundle, Mode: 0o644, Data: ca})
	r.Add(Dir("/root", 0o700))
	r.Add(File{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: nonrootUID, GID: nonrootGID})
	r.Add(Dir("/tmp", fs.ModeSticky|0o777))
	return r, nil
}

// Image assembles the image of spec for one platform from the base layer and
// the platform's own layer.
func (s *Spec) Image(p Platform, base, own v1.Layer) (v1.Image, error) {
	ports := map[string]struct{}{}
	for _, port := range s.Ports {
		ports[port] = struct{}{}
	}
	if len(ports) == 0 {
		ports = nil
	}
	created := v1.Time{Time: s.Created.UTC()}
	cfg := &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		Config: v1.Config{
			Entrypoint:   s.Entrypoint,
			Cmd:          s.Cmd,
			Env:          s.Env,
			User:         fmt.Sprintf("%d:%d", nonrootUID, nonrootGID),
			WorkingDir:   "/",
			Labels:       s.Labels,
			ExposedPorts: ports,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created,
			CreatedBy: "scripts/images: base (passwd, group, CA bundle, /tmp)"}},
		mutate.Addendum{Layer: own, History: v1.History{Created: created,
			CreatedBy: "scripts/images: " + s.Name}},
	)
}

// Index puts one image per platform, in the order given, into an OCI image
// index: what a node pulls and picks its own platform from.
func Index(imgs []v1.Image, platforms []Platform) (v1.ImageIndex, error) {
	if len(imgs) != len(platforms) || len(imgs) == 0 {
		return nil, fmt.Errorf("index: %d images for %d platforms", len(imgs), len(platforms))
	}
	adds := make([]mutate.IndexAddendum, len(imgs))
	for i, img := range imgs {
		pl := platforms[i].V1()
		adds[i] = mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pl}}
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, adds...), nil
}

// PlatformSize is the bytes a node pulls for one platform: manifest, config
// and compressed layers.
func PlatformSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, err
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}
