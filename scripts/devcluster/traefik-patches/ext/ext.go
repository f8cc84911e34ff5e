// Package ext stands in for github.com/traefik/traefik/dynamic/ext, a module nested in
// Traefik's repository (pkg/config/dynamic/ext) that Traefik's go.mod puts in with a
// replace: a nested module is left out of its parent's module zip, and the proxy does not
// serve it on its own. Upstream's open-source version is the same: empty extension points
// of dynamic.HTTP and dynamic.Router, inlined, so they add no configuration.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
