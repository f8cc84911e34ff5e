// Command images builds edgeflow's container images with no Docker daemon
// and no network: static Go binaries on an empty base (FROM scratch), one
// OCI image index per service covering every requested platform, written as
// OCI image-layout tarballs that containerd imports (`ctr images import`,
// `k3s ctr images import`) or pushed to a registry. With -thirdparty it also
// builds the NATS, Mosquitto and InfluxDB images the offline dev cluster
// runs. See README.md in this folder.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/edgeflow/edgeflow/internal/service"
)

// Services are edgeflow's service images, one per command folder.
var Services = []string{"ingest", "processor", "notifier", "dashboard"}

// sourceURL is the org.opencontainers.image.source label of the service
// images: the repository of the module github.com/edgeflow/edgeflow.
const sourceURL = "https://github.com/edgeflow/edgeflow"

// defaultRepo is where images are named when no registry is given:
// containerd on the dev cluster and K3s nodes stores them under it, and
// manifests use imagePullPolicy Never/IfNotPresent with it.
const defaultRepo = "localhost/edgeflow"

type options struct {
	out        string
	registry   string
	tag        string
	platforms  string
	only       string
	thirdParty bool
	push       bool
	insecure   bool
	load       bool
	jobs       int
	printTag   bool
	// platformsSet is whether -platforms was given: -load defaults to the
	// host platform.
	platformsSet bool
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "directory for the tarballs and images.json (default <repo>/.build/images)")
	flag.StringVar(&o.registry, "registry", "", "registry host[:port][/path]; images become REGISTRY/edgeflow/NAME (default "+defaultRepo+"/NAME)")
	flag.StringVar(&o.tag, "tag", "", "tag of the service images (default: 12-hex commit, plus -dirty-<8 hex of sha256(git diff HEAD)> when tracked files changed)")
	flag.StringVar(&o.platforms, "platforms", defaultPlatforms, "comma-separated platforms of the service images (with -load and no -platforms: the host's)")
	flag.StringVar(&o.only, "only", "", "comma-separated image names to build (default all services; "+strings.Join(ThirdParty, ", ")+" with -thirdparty)")
	flag.BoolVar(&o.thirdParty, "thirdparty", false, "also build the dev cluster's third-party images ("+strings.Join(ThirdParty, ", ")+"), host platform only")
	flag.BoolVar(&o.push, "push", false, "push to -registry instead of writing tarballs")
	flag.BoolVar(&o.insecure, "insecure", false, "with -push: the registry speaks plain HTTP")
	flag.BoolVar(&o.load, "load", false, "import the tarballs into the dev cluster's containerd (scripts/devcluster/load-image.sh)")
	flag.IntVar(&o.jobs, "jobs", 2, "platforms compiled at the same time (each go build uses every core)")
	flag.BoolVar(&o.printTag, "print-tag", false, "print the default tag of the work tree and exit")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: go run ./scripts/images [flags]\n\n"+
			"Builds edgeflow's images offline, without a Docker daemon (scripts/images/README.md).\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	flag.Visit(func(f *flag.Flag) { o.platformsSet = o.platformsSet || f.Name == "platforms" })
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "images: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, log, o); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, o options) error {
	start := time.Now()
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	root, err := RepoRoot(ctx, cwd)
	if err != nil {
		return err
	}
	rev, err := GitRevision(ctx, root)
	if err != nil {
		return err
	}
	if o.printTag {
		fmt.Println(rev.Tag)
		return nil
	}
	if o.push && o.load {
		return errors.New("-push and -load exclude each other: -load imports the tarballs that -push does not write")
	}
	if o.push && o.registry == "" {
		return errors.New("-push needs -registry")
	}
	if o.insecure && !o.push {
		return errors.New("-insecure only applies to -push")
	}
	tag := rev.Tag
	if o.tag != "" {
		tag = o.tag
	}
	if _, err := name.NewTag("localhost/x:"+tag, name.StrictValidation); err != nil {
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	repo := defaultRepo
	if o.registry != "" {
		repo = strings.TrimSuffix(o.registry, "/") + "/edgeflow"
	}
	if o.load && !o.platformsSet {
		// The dev cluster is this machine: its containerd keeps only its own
		// platform on import, so the others would be built for nothing.
		o.platforms = HostPlatform().String()
	}
	platforms, err := ParsePlatforms(o.platforms)
	if err != nil {
		return err
	}
	services, thirdParty, err := selectImages(o.only, o.thirdParty)
	if err != nil {
		return err
	}
	out := o.out
	if out == "" {
		out = filepath.Join(root, ".build", "images")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	log.Info("building images", "repo", repo, "tag", tag, "platforms", o.platforms,
		"images", strings.Join(append(slices.Clone(services), thirdParty...), ","))

	var specs []*Spec
	if len(services) > 0 {
		pkgs := make([]string, len(services))
		for i, s := range services {
			pkgs[i] = "./" + s
		}
		// The binaries say what the image labels say: version the tag, revision the commit.
		binDirs, err := GoBuild(ctx, log, root, filepath.Join(root, ".build", "bin"), pkgs, platforms, o.jobs,
			service.StampFlags(tag, rev.Commit))
		if err != nil {
			return err
		}
		for _, s := range services {
			specs = append(specs, serviceSpec(s, repo, tag, rev, platforms, binDirs))
		}
	}
	for _, t := range thirdParty {
		s, err := thirdPartySpec(ctx, log, root, filepath.Join(root, ".build", "thirdparty"), repo, t)
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		specs = append(specs, s)
	}

	baseFS, err := BaseRootfs()
	if err != nil {
		return err
	}
	base, err := baseFS.Layer()
	if err != nil {
		return fmt.Errorf("base layer: %w", err)
	}

	var built []Built
	for _, s := range specs {
		t0 := time.Now()
		b, err := buildIndex(ctx, s, base)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if o.push {
			if err := Push(ctx, s.Ref, b.index, o.insecure); err != nil {
				return err
			}
		} else {
			b.Tarball = s.Name + ".tar"
			ref, err := name.NewTag(s.Ref, name.StrictValidation)
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			if err := WriteOCIArchiveFile(filepath.Join(out, b.Tarball), ref, b.index); err != nil {
				return err
			}
		}
		attrs := []any{"ref", b.Ref, "digest", b.Digest}
		for _, p := range b.Platforms {
			attrs = append(attrs, p.Platform, fmt.Sprintf("%.1f MB", float64(p.CompressedSize)/1e6))
		}
		if o.push {
			attrs = append(attrs, "pushed", true)
		} else {
			attrs = append(attrs, "tarball", filepath.Join(out, b.Tarball))
		}
		log.Info("image", append(attrs, "took", time.Since(t0).Round(time.Millisecond))...)
		built = append(built, b)
	}
	report := filepath.Join(out, "images.json")
	if err := WriteReport(report, built); err != nil {
		return err
	}
	if o.load {
		tarballs := make([]string, len(built))
		for i, b := range built {
			tarballs[i] = filepath.Join(out, b.Tarball)
		}
		if err := Load(ctx, root, tarballs); err != nil {
			return err
		}
		log.Info("loaded into the dev cluster", "images", len(built))
	}
	log.Info("done", "images", len(built), "report", report, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// selectImages splits -only into service and third-party names; without
// -only it is every service, plus the third-party images with -thirdparty.
func selectImages(only string, withThirdParty bool) (services, thirdParty []string, err error) {
	if strings.TrimSpace(only) == "" {
		if withThirdParty {
			thirdParty = ThirdParty
		}
		return Services, thirdParty, nil
	}
	for n := range strings.SplitSeq(only, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case slices.Contains(Services, n):
			if !slices.Contains(services, n) {
				services = append(services, n)
			}
		case slices.Contains(ThirdParty, n):
			if !slices.Contains(thirdParty, n) {
				thirdParty = append(thirdParty, n)
			}
		default:
			return nil, nil, fmt.Errorf("-only: unknown image %q (known: %s)", n,
				strings.Join(append(slices.Clone(Services), ThirdParty...), ", "))
		}
	}
	if len(services)+len(thirdParty) == 0 {
		return nil, nil, fmt.Errorf("-only %q names no image", only)
	}
	return services, thirdParty, nil
}

// serviceSpec is the image of one edgeflow service: its static binary at
// /<name>, run as nonroot, with nothing in the environment but PATH (the
// manifests set EDGEFLOW_* and mount secrets).
func serviceSpec(svc, repo, tag string, rev Revision, platforms []Platform, binDirs map[Platform]string) *Spec {
	return &Spec{
		Name:       svc,
		Ref:        repo + "/" + svc + ":" + tag,
		Entrypoint: []string{"/" + svc},
		Env:        []string{"PATH=/"},
		Labels: map[string]string{
			"org.opencontainers.image.source":   sourceURL,
			"org.opencontainers.image.revision": rev.Commit,
			"org.opencontainers.image.version":  tag,
			"org.opencontainers.image.title":    "edgeflow " + svc,
		},
		Created:   rev.Committed,
		Platforms: platforms,
		Files: func(p Platform) (Rootfs, error) {
			r := Rootfs{}
			err := r.AddFile(filepath.Join(binDirs[p], svc), "/"+svc, 0o755)
			return r, err
		},
	}
}

// buildIndex makes the layers of every platform of s (compressing in
// parallel, one per core) and assembles the index.
func buildIndex(ctx context.Context, s *Spec, base v1.Layer) (Built, error) {
	imgs := make([]v1.Image, len(s.Platforms))
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(runtime.NumCPU())
	for i, p := range s.Platforms {
		g.Go(func() error {
			fs, err := s.Files(p)
			if err != nil {
				return err
			}
			own, err := fs.Layer()
			if err != nil {
				return fmt.Errorf("%s layer: %w", p, err)
			}
			imgs[i], err = s.Image(p, base, own)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Built{}, err
	}
	idx, err := Index(imgs, s.Platforms)
	if err != nil {
		return Built{}, err
	}
	d, err := idx.Digest()
	if err != nil {
		return Built{}, err
	}
	b := Built{Name: s.Name, Ref: s.Ref, Digest: d.String(), index: idx}
	for i, img := range imgs {
		id, err := img.Digest()
		if err != nil {
			return Built{}, err
		}
		size, err := PlatformSize(img)
		if err != nil {
			return Built{}, err
		}
		b.Platforms = append(b.Platforms, BuiltPlatform{Platform: s.Platforms[i].String(), Digest: id.String(), CompressedSize: size})
	}
	return b, nil
}
