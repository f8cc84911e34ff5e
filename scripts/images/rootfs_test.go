package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
)

type tarEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	data     string
}

// readLayer reads every entry of an uncompressed layer tar, checking the
// properties every entry must have (epoch mtime, no owner names).
func readLayer(t *testing.T, r io.Reader) (map[string]tarEntry, []string) {
	t.Helper()
	got := map[string]tarEntry{}
	var order []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v, want the epoch", h.Name, h.ModTime)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q/%q, want numeric owners only", h.Name, h.Uname, h.Gname)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = tarEntry{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, data: string(b)}
		order = append(order, h.Name)
	}
	return got, order
}

func TestBaseRootfsHasExactlyTheExpectedFiles(t *testing.T) {
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		t.Skipf("no CA bundle on this host: %v", err)
	}
	base, err := BaseRootfs()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base.Tar()
	if err != nil {
		t.Fatal(err)
	}
	got, order := readLayer(t, bytes.NewReader(raw))
	want := map[string]tarEntry{
		"etc/":                              {typ: tar.TypeDir, mode: 0o755},
		"etc/group":                         {typ: tar.TypeReg, mode: 0o644, data: "root:x:0:\nnonroot:x:65532:\n"},
		"etc/passwd":                        {typ: tar.TypeReg, mode: 0o644, data: "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
		"etc/ssl/":                          {typ: tar.TypeDir, mode: 0o755},
		"etc/ssl/certs/":                    {typ: tar.TypeDir, mode: 0o755},
		"etc/ssl/certs/ca-certificates.crt": {typ: tar.TypeReg, mode: 0o644, data: string(ca)},
		"home/":                             {typ: tar.TypeDir, mode: 0o755},
		"home/nonroot/":                     {typ: tar.TypeDir, mode: 0o700, uid: 65532, gid: 65532},
		"root/":                             {typ: tar.TypeDir, mode: 0o700},
		"tmp/":                              {typ: tar.TypeDir, mode: 0o1777},
	}
	for n, w := range want {
		g, ok := got[n]
		if !ok {
			t.Errorf("missing %s", n)
			continue
		}
		if g != w {
			t.Errorf("%s: got type %c mode %o owner %d:%d (%d bytes), want type %c mode %o owner %d:%d (%d bytes)",
				n, g.typ, g.mode, g.uid, g.gid, len(g.data), w.typ, w.mode, w.uid, w.gid, len(w.data))
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("unexpected entry %s", n)
		}
	}
	wantOrder := []string{"etc/", "etc/group", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
		"home/", "home/nonroot/", "root/", "tmp/"}
	if strings.Join(order, " ") != strings.Join(wantOrder, " ") {
		t.Errorf("entry order\n got %v\nwant %v", order, wantOrder)
	}
}

func TestRootfsTarIsReproducibleAndParentsComeFirst(t *testing.T) {
	build := func() Rootfs {
		r := Rootfs{}
		// Added in an order unlike the output order on purpose.
		r.Add(File{Path: "/z/bin", Mode: 0o755, Data: []byte("binary")})
		r.Add(File{Path: "usr/lib/x-y/libc.so.6", Mode: 0o755, Data: []byte("libc")})
		r.Add(File{Path: "/usr/lib/x.so", Mode: 0o644, Data: []byte("x")})
		r.Add(File{Path: "/data", Mode: fs.ModeDir | 0o750, UID: 65532, GID: 65532})
		return r
	}
	a, err := build().Tar()
	if err != nil {
		t.Fatal(err)
	}
	b, err := build().Tar()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the same files gave different tar bytes")
	}
	got, order := readLayer(t, bytes.NewReader(a))
	wantOrder := []string{"data/", "usr/", "usr/lib/", "usr/lib/x-y/", "usr/lib/x-y/libc.so.6", "usr/lib/x.so", "z/", "z/bin"}
	if strings.Join(order, " ") != strings.Join(wantOrder, " ") {
		t.Errorf("entry order\n got %v\nwant %v", order, wantOrder)
	}
	if e := got["data/"]; e.uid != 65532 || e.mode != 0o750 {
		t.Errorf("data/: owner %d mode %o, want 65532 and 0750", e.uid, e.mode)
	}
	if e := got["usr/lib/"]; e.typ != tar.TypeDir || e.uid != 0 || e.mode != 0o755 {
		t.Errorf("implicit parent usr/lib/: %+v, want a root-owned 0755 directory", e)
	}

	l1, err := build().Layer()
	if err != nil {
		t.Fatal(err)
	}
	l2, err := build().Layer()
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := l1.Digest()
	d2, _ := l2.Digest()
	if d1 != d2 {
		t.Errorf("layer digests differ: %s %s", d1, d2)
	}
}

func TestRootfsTarRefusesAFileAsAParent(t *testing.T) {
	r := Rootfs{}
	r.Add(File{Path: "/a", Mode: 0o644, Data: []byte("file")})
	r.Add(File{Path: "/a/b", Mode: 0o644})
	if _, err := r.Tar(); err == nil || !strings.Contains(err.Error(), "parent /a is a file") {
		t.Fatalf("got %v, want an error about the parent being a file", err)
	}
}
