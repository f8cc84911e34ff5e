package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/domain"
	"github.com/kelseyhightower/envconfig"
	"go.yaml.in/yaml/v3"

	"github.com/edgeflow/edgeflow/devenv/influxadmin"
)

// The buckets of manifests/base's edgeflow-influx ConfigMap (EDGEFLOW_INFLUX_BUCKET,
// _RAW_BUCKET; manifests' TestServicesGetTheirOwnInfluxCredentials checks the second) and
// the organisation influxdb.yaml sets up.
const (
	influxOrg       = "edgeflow"
	influxBucket    = "edgeflow"
	influxRawBucket = "edgeflow/raw"
)

// InfluxAnnotation on the influxdb StatefulSet names the InfluxDB API generation the
// manifests run: Influx18 (manifests/base) or Influx2 (manifests/components/influxdb2).
const (
	InfluxAnnotation = "edgeflow.io/influxdb"
	Influx18         = "1.8"
	Influx2          = "2"
)

// InfluxAPI reads InfluxAnnotation from the influxdb StatefulSet of a rendered overlay.
func InfluxAPI(rendered []byte) (string, error) {
	dec := yaml.NewDecoder(bytes.NewReader(rendered))
	for {
		var o struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name        string            `yaml:"name"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
		}
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return "", errors.New("the overlay has no StatefulSet influxdb")
		}
		if err != nil {
			return "", fmt.Errorf("rendered overlay: %w", err)
		}
		if o.Kind != "StatefulSet" || o.Metadata.Name != "influxdb" {
			continue
		}
		switch v := o.Metadata.Annotations[InfluxAnnotation]; v {
		case Influx18, Influx2:
			return v, nil
		default:
			return "", fmt.Errorf("StatefulSet influxdb: annotation %s=%q, want %q (manifests/base) or %q (components/influxdb2)", InfluxAnnotation, v, Influx18, Influx2)
		}
	}
}

// influxUsers are the services' users and what each may do on the buckets.
var influxUsers = []struct {
	name      string
	privilege influxadmin.Privilege
}{{"processor", influxadmin.Write}, {"dashboard", influxadmin.Read}}

// setupInflux does what needs InfluxDB's admin credential, through a port-forward, at
// every deploy: the buckets with the retention of EDGEFLOW_INFLUX_RAW_RETENTION_DAYS and
// _WINDOW_RETENTION_DAYS, and the services' credentials. api is InfluxAPI's answer. 1.8
// (every shipped overlay): the admin user, the database, its retention policies and the
// services' users (influxadmin). 2.x (components/influxdb2, untested): the buckets'
// retention rules and, once, an authorization per service whose token goes into the
// edgeflow-influxdb Secret.
func setupInflux(ctx context.Context, k *Kube, api string) error {
	var r influxadmin.Retention
	if err := envconfig.Process("edgeflow", &r); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	dir := k.buildDir("secrets", k.Cluster, "edgeflow-influxdb")
	read := func(key string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, key))
		return strings.TrimSpace(string(b)), err
	}
	port, stop, err := k.PortForward(ctx, "pod/influxdb-0", 0, 8086)
	if err != nil {
		return err
	}
	defer stop()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if api == Influx18 {
		password, err := read("admin-password")
		if err != nil {
			return err
		}
		var users []influxadmin.User
		for _, u := range influxUsers {
			pw, err := read(u.name + "-password")
			if err != nil {
				return err
			}
			users = append(users, influxadmin.User{Name: u.name, Password: pw, Privilege: u.privilege})
		}
		plan, err := influxadmin.NewPlan(influxBucket, influxRawBucket, r, users...)
		if err != nil {
			return err
		}
		admin := influxadmin.Admin{URL: url, User: "admin", Password: password}
		if err := influxadmin.CreateAdmin(ctx, admin); err != nil {
			return fmt.Errorf("influxdb 1.8 admin user: %w", err)
		}
		if err := influxadmin.Apply(ctx, admin, plan); err != nil {
			return fmt.Errorf("influxdb 1.8 setup: %w", err)
		}
		logf("influxdb: raw readings kept %d days, windows %d days; users processor (write), dashboard (read)", r.RawDays, r.WindowDays)
		return nil
	}
	token, err := read("token")
	if err != nil {
		return err
	}
	made, err := setupInflux2(ctx, url, token, r, func(key string) bool {
		_, err := os.Stat(filepath.Join(dir, key))
		return err == nil
	}, func(key, value string) error {
		return os.WriteFile(filepath.Join(dir, key), []byte(value), 0o600)
	})
	if err != nil {
		return fmt.Errorf("influxdb 2.x setup: %w", err)
	}
	logf("influxdb: raw readings kept %d days, windows %d days", r.RawDays, r.WindowDays)
	if made {
		return applySecret(ctx, k, k.buildDir("secrets", k.Cluster), "edgeflow-influxdb")
	}
	return nil
}

// setupInflux2 sets the buckets' retention on InfluxDB 2.x (creating the raw bucket), maps
// each to the database/retention policy the dashboard's InfluxQL reads (ensureDBRP), and
// makes an authorization per service whose <user>-token is not stored yet: write on both
// buckets for the processor, read for the dashboard. It reports whether it stored a token.
// Not run by any test: InfluxDB 2.x does not build here (components/influxdb2 lists
// everything 2.x takes that is untested).
func setupInflux2(ctx context.Context, url, token string, r influxadmin.Retention,
	stored func(key string) bool, store func(key, value string) error) (bool, error) {
	c := influxdb2.NewClient(url, token)
	defer c.Close()
	org, err := c.OrganizationsAPI().FindOrganizationByName(ctx, influxOrg)
	if err != nil {
		return false, fmt.Errorf("organisation %s: %w", influxOrg, err)
	}
	days := map[string]int{influxBucket: r.WindowDays, influxRawBucket: r.RawDays}
	var ids []string
	for _, name := range []string{influxBucket, influxRawBucket} {
		rule := domain.RetentionRule{EverySeconds: int64(days[name]) * 86400}
		b, err := c.BucketsAPI().FindBucketByName(ctx, name)
		switch {
		case err != nil:
			if b, err = c.BucketsAPI().CreateBucketWithName(ctx, org, name, rule); err != nil {
				return false, fmt.Errorf("create bucket %s: %w", name, err)
			}
		case len(b.RetentionRules) != 1 || b.RetentionRules[0].EverySeconds != rule.EverySeconds:
			b.RetentionRules = domain.RetentionRules{rule}
			if b, err = c.BucketsAPI().UpdateBucket(ctx, b); err != nil {
				return false, fmt.Errorf("bucket %s retention: %w", name, err)
			}
		}
		if b.Id == nil {
			return false, errors.New("bucket " + name + " has no id")
		}
		ids = append(ids, *b.Id)
		if err := ensureDBRP(ctx, c, *org.Id, name, *b.Id); err != nil {
			return false, err
		}
	}
	made := false
	for _, u := range influxUsers {
		key := u.name + "-token"
		if stored(key) {
			continue
		}
		action := domain.PermissionActionRead
		if u.privilege == influxadmin.Write {
			action = domain.PermissionActionWrite
		}
		var perms []domain.Permission
		for _, id := range ids {
			perms = append(perms, domain.Permission{Action: action,
				Resource: domain.Resource{Type: domain.ResourceTypeBuckets, Id: &id, OrgID: org.Id}})
		}
		desc := "edgeflow " + u.name
		a, err := c.AuthorizationsAPI().CreateAuthorization(ctx, &domain.Authorization{
			AuthorizationUpdateRequest: domain.AuthorizationUpdateRequest{Description: &desc},
			OrgID:                      org.Id, Permissions: &perms})
		if err != nil {
			return made, fmt.Errorf("authorization of %s: %w", u.name, err)
		}
		if a.Token == nil {
			return made, fmt.Errorf("authorization of %s: no token", u.name)
		}
		if err := store(key, *a.Token); err != nil {
			return made, err
		}
		made = true
	}
	return made, nil
}

// dbrpOf is the 1.x database and retention policy a bucket is read as over InfluxQL,
// the 1.8 layout (docs/operations.md, "InfluxDB retention"): "db/rp" is policy rp of
// database db; "db" is db's default policy, autogen, which a query naming no policy reads.
func dbrpOf(bucket string) (db, rp string, isDefault bool) {
	db, rp, found := strings.Cut(bucket, "/")
	if !found || rp == "" {
		return db, "autogen", true
	}
	return db, rp, false
}

// ensureDBRP maps bucket to its database/retention policy (dbrpOf) unless a mapping of
// that pair exists: InfluxDB 2.x serves InfluxQL on /query (the dashboard's history)
// only for buckets so mapped. Untested like the rest of the 2.x set-up.
func ensureDBRP(ctx context.Context, c influxdb2.Client, orgID, bucket, bucketID string) error {
	db, rp, isDefault := dbrpOf(bucket)
	have, err := c.APIClient().GetDBRPs(ctx, &domain.GetDBRPsParams{OrgID: &orgID, Db: &db, Rp: &rp})
	if err != nil {
		return fmt.Errorf("dbrp mappings of %s: %w", bucket, err)
	}
	if have.Content != nil && len(*have.Content) > 0 {
		return nil
	}
	_, err = c.APIClient().PostDBRP(ctx, &domain.PostDBRPAllParams{Body: domain.PostDBRPJSONRequestBody(domain.DBRPCreate{
		BucketID: bucketID, OrgID: &orgID, Database: db, RetentionPolicy: rp, Default: &isDefault})})
	if err != nil {
		return fmt.Errorf("dbrp mapping %s/%s of bucket %s: %w", db, rp, bucket, err)
	}
	return nil
}
