package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgeflow/edgeflow/internal/bus"
	"github.com/edgeflow/edgeflow/internal/reading"
	"github.com/edgeflow/edgeflow/internal/secure"
)

// The hub's leaf node users (overlays/hub; docs/operations.md#hub), one per site.
const (
	// SecretNATSLeaf holds the hub's users.conf, which its leafnodes.conf
	// includes in the listener's authorization: each site's user with the
	// bcrypt hash of its password, so that the hub's cluster never holds a
	// site's password.
	SecretNATSLeaf = "edgeflow-nats-leaf"
	// SecretNATSUplink is what a site's NATS server logs in to the hub with
	// (components/uplink): user, password and the hub's CA (ca.crt).
	SecretNATSUplink = "edgeflow-nats-uplink"
	// uplinkDir holds, per site, the folder to copy to the site's secrets
	// as SecretNATSUplink: uplink/<site>/{user,password,ca.crt}. It is not
	// an edgeflow-* folder, so task deploy never applies it to the hub.
	uplinkDir = "uplink"
	// leafUsersKey is the users file's key in SecretNATSLeaf.
	leafUsersKey = "users.conf"
)

// leafBcryptCost is the cost of users.conf's hashes; the hub verifies one on
// every leaf node login. Tests lower it (bcrypt.MinCost) to keep -race runs short.
var leafBcryptCost = bcrypt.DefaultCost

// leafUserLine is one user of users.conf, as leafUsers writes it.
var leafUserLine = regexp.MustCompile(`^\s*\{user: "([^"]+)", password: "([^"]+)"\}\s*$`)

// leafUsers makes a password for every site in sites that has none yet
// (uplink/<site>/password), then the kit of every site under uplink/ (user,
// ca.crt of the hub's CA) and the hub's users.conf: one user per site,
// named as the site, with the bcrypt hash of its password. A line of the
// existing users.conf whose hash still matches is kept (a hash has a random
// salt: rewriting every time would change the Secret on every run). A site
// is removed by deleting its folder under uplink/. Without any site no
// users.conf is made, and the hub's NATS server does not start (overlays/hub
// cannot run without a site).
func (g gen) leafUsers(sites []string, ca *secure.CA) error {
	made := map[string]string{}
	for _, s := range sites {
		if err := validSite(s); err != nil {
			return fmt.Errorf("-leaf-site: %w", err)
		}
		pw, err := g.token(uplinkDir, s+"/password")
		if err != nil {
			return err
		}
		made[s] = pw
	}
	entries, err := os.ReadDir(g.path(uplinkDir, ""))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	have, err := g.read(SecretNATSLeaf, leafUsersKey)
	if err != nil {
		return err
	}
	kept := map[string]string{} // user -> a line of the existing users.conf
	for _, line := range strings.Split(string(have), "\n") {
		if m := leafUserLine.FindStringSubmatch(line); m != nil {
			kept[m[1]] = line
		}
	}
	var lines []string
	for _, e := range entries {
		site := e.Name()
		if !e.IsDir() {
			continue
		}
		if err := validSite(site); err != nil {
			return fmt.Errorf("%s: %w (delete the folder)", g.path(uplinkDir, site), err)
		}
		pw, ok := made[site]
		if !ok {
			if pw, err = g.token(uplinkDir, site+"/password"); err != nil {
				return err
			}
		}
		if err := g.derived(uplinkDir, site+"/user", []byte(site)); err != nil {
			return err
		}
		if err := g.derived(uplinkDir, site+"/ca.crt", ca.CertPEM); err != nil {
			return err
		}
		line, ok := kept[site]
		if !ok || bcrypt.CompareHashAndPassword([]byte(leafUserLine.FindStringSubmatch(line)[2]), []byte(pw)) != nil {
			hash, err := bcrypt.GenerateFromPassword([]byte(pw), leafBcryptCost)
			if err != nil {
				return err
			}
			line = fmt.Sprintf(`  {user: %q, password: %q}`, site, hash)
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return g.remove(SecretNATSLeaf, leafUsersKey)
	}
	conf := "# The hub's leaf node users, one per site (overlays/hub, leafnodes.conf), made by\n" +
		"# scripts/secrets from uplink/<site>/password: bcrypt hashes, the passwords stay with\n" +
		"# the sites. Do not edit: add a site with -leaf-site, remove one by deleting its folder.\n" +
		"users: [\n" + strings.Join(lines, "\n") + "\n]\n"
	return g.derived(SecretNATSLeaf, leafUsersKey, []byte(conf))
}

// validSite reports a name that cannot be a site's (its JetStream domain and
// its leaf node user).
func validSite(s string) error {
	if !reading.ValidName(s) || s == bus.HubDomain {
		return fmt.Errorf("%q is not a site name (letters, digits, _ and -; not %s)", reading.Truncate(s, 64), bus.HubDomain)
	}
	return nil
}
