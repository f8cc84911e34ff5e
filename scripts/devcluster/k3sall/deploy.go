package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// fieldManager owns what the deploy controller applies (server-side apply, forced, as
// K3s's deploy controller owns the objects of its manifests).
const fieldManager = "k3s-server-deploy"

// deployManifests applies every *.yaml, *.yml and *.json file of dir at start and again
// whenever its content changes, as K3s's server does with its manifests folder
// (server/manifests). A file with a FILE.skip beside it is left alone, as in K3s. A file
// that fails (say, a custom resource whose definition is not there yet) is retried at the
// next check. Removing a file leaves its objects in place (K3s deletes them).
func deployManifests(ctx context.Context, dir, kubeconfig string, every time.Duration) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		logf("deploy: %v", err)
		return
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		logf("deploy: %v", err)
		return
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		logf("deploy: %v", err)
		return
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		logf("deploy: %v", err)
		return
	}
	d := &deployer{dir: dir, dyn: dyn, applied: map[string][32]byte{}, failed: map[string]string{},
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
	for {
		d.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

type deployer struct {
	dir     string
	dyn     dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	applied map[string][32]byte // file name -> checksum of the content last applied in full
	failed  map[string]string   // file name -> last error logged, to log each error once
}

func (d *deployer) sync(ctx context.Context) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		logf("deploy: %v", err)
		return
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	var files []string
	for n := range names {
		ext := strings.ToLower(filepath.Ext(n))
		if (ext == ".yaml" || ext == ".yml" || ext == ".json") && !names[n+".skip"] && !strings.HasPrefix(n, ".") {
			files = append(files, n)
		}
	}
	sort.Strings(files)
	for _, n := range files {
		data, err := os.ReadFile(filepath.Join(d.dir, n))
		if err != nil {
			continue // removed meanwhile
		}
		sum := sha256.Sum256(data)
		if d.applied[n] == sum {
			continue
		}
		t := time.Now()
		count, err := d.apply(ctx, data)
		if err != nil {
			if msg := err.Error(); d.failed[n] != msg {
				logf("deploy: %s: %v (retried every check)", n, err)
				d.failed[n] = msg
			}
			d.mapper.Reset() // a definition applied meanwhile must be found
			continue
		}
		delete(d.failed, n)
		d.applied[n] = sum
		logf("deploy: applied %s (%d objects) in %s", n, count, since(t))
	}
}

// apply applies each object of a YAML or JSON stream; it returns how many it applied.
func (d *deployer) apply(ctx context.Context, data []byte) (int, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var errs []error
	n := 0
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return n, err
		}
		if len(obj.Object) == 0 {
			continue // an empty document
		}
		if obj.IsList() {
			_ = obj.EachListItem(func(o runtime.Object) error {
				if err := d.applyOne(ctx, o.(*unstructured.Unstructured)); err != nil {
					errs = append(errs, err)
				} else {
					n++
				}
				return nil
			})
			continue
		}
		if err := d.applyOne(ctx, &obj); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func (d *deployer) applyOne(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	var ri dynamic.ResourceInterface = d.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		ri = d.dyn.Resource(m.Resource).Namespace(ns)
	}
	if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return nil
}
