// Package influxadmin is what the holder of InfluxDB 1.8's admin credential
// sets up for the services, since they hold less: the database, one
// retention policy per bucket with the durations operators choose, and the
// services' users with a privilege each (the processor writes, the
// dashboard reads). `task up` (scripts/devstack, through devenv)
// and `task deploy` (the dev cluster's InfluxDB 1.8) apply it at every
// start; it is idempotent and brings a changed duration or password to what
// is asked.
package influxadmin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/internal/influx"
)

// Retention is how long InfluxDB keeps what the processor writes. The
// defaults keep a 10 Gi volume half full at 100 devices of three metrics
// reading once a second (docs/operations.md, "InfluxDB retention").
type Retention struct {
	RawDays    int `envconfig:"INFLUX_RAW_RETENTION_DAYS" default:"7" desc:"days the raw readings and the windows but the coarsest (bucket EDGEFLOW_INFLUX_RAW_BUCKET) are kept; applied at every start of InfluxDB's setup (task up, task deploy)"`
	WindowDays int `envconfig:"INFLUX_WINDOW_RETENTION_DAYS" default:"180" desc:"days the coarsest windows (telemetry_1m by default, bucket EDGEFLOW_INFLUX_BUCKET) are kept; applied like the raw retention"`
}

// Validate reports every problem at once.
func (r Retention) Validate() error {
	var errs []error
	if r.RawDays < 1 || r.RawDays > 3650 {
		errs = append(errs, errors.New("EDGEFLOW_INFLUX_RAW_RETENTION_DAYS must be 1..3650"))
	}
	if r.WindowDays < 1 || r.WindowDays > 36500 {
		errs = append(errs, errors.New("EDGEFLOW_INFLUX_WINDOW_RETENTION_DAYS must be 1..36500"))
	}
	return errors.Join(errs...)
}

// Privilege of a user on the database.
type Privilege string

// The privileges the services need.
const (
	Write Privilege = "WRITE" // the processor
	Read  Privilege = "READ"  // the dashboard
)

// User is a service's InfluxDB 1.8 user: never an admin, one privilege on
// the database.
type User struct {
	Name, Password string
	Privilege      Privilege
}

// Token is the user as EDGEFLOW_INFLUX_TOKEN holds it for 1.8.
func (u User) Token() string { return u.Name + ":" + u.Password }

// Policy is a retention policy; Name "" is the database's default one
// (autogen on a new database), which a bucket naming no policy writes to
// and reads from.
type Policy struct {
	Name     string
	Duration time.Duration
}

// Plan is what Apply sets up.
type Plan struct {
	Database string
	Policies []Policy
	Users    []User
}

// NewPlan is the setup of the two buckets the processor writes, "db" or
// "db/rp" each: windows kept r.WindowDays, raw readings r.RawDays. They
// must be in one database (users' privileges are per database) and apart.
func NewPlan(windowBucket, rawBucket string, r Retention, users ...User) (Plan, error) {
	if err := r.Validate(); err != nil {
		return Plan{}, err
	}
	wdb, wrp, _ := strings.Cut(windowBucket, "/")
	rdb, rrp, _ := strings.Cut(rawBucket, "/")
	switch {
	case wdb == "":
		return Plan{}, fmt.Errorf("window bucket %q names no database", windowBucket)
	case wdb != rdb:
		return Plan{}, fmt.Errorf("raw bucket %q and window bucket %q must be in one database", rawBucket, windowBucket)
	case wrp == rrp:
		return Plan{}, fmt.Errorf("raw bucket %q and window bucket %q must be different retention policies", rawBucket, windowBucket)
	}
	day := 24 * time.Hour
	return Plan{Database: wdb, Users: users, Policies: []Policy{
		{Name: wrp, Duration: time.Duration(r.WindowDays) * day},
		{Name: rrp, Duration: time.Duration(r.RawDays) * day},
	}}, nil
}

// Admin is where InfluxDB 1.8 is and its admin user; User "" when
// authentication is off.
type Admin struct {
	URL, User, Password string
	Client              *http.Client // nil: a client with a 30 s timeout
}

// CreateAdmin makes the admin user of an InfluxDB 1.8 with authentication
// on. 1.8 accepts exactly this statement without credentials while it has
// no admin; once the user exists, the same statement with its credentials
// changes nothing.
func CreateAdmin(ctx context.Context, a Admin) error {
	return a.exec(ctx, "CREATE USER "+influx.QuoteIdent(a.User)+" WITH PASSWORD "+influx.QuoteString(a.Password)+" WITH ALL PRIVILEGES")
}

// Apply creates what p names and brings what exists to it: the database,
// each policy's duration (CREATE or ALTER RETENTION POLICY), each user's
// password and privilege (never admin). Points older than a shortened
// duration go at InfluxDB's next retention check (30 min by default).
func Apply(ctx context.Context, a Admin, p Plan) error {
	if err := a.exec(ctx, "CREATE DATABASE "+influx.QuoteIdent(p.Database)); err != nil {
		return err
	}
	existing, err := a.policies(ctx, p.Database)
	if err != nil {
		return err
	}
	for _, want := range p.Policies {
		var have policy
		found := false
		for _, e := range existing {
			if e.name == want.Name || want.Name == "" && e.isDefault {
				have, found = e, true
			}
		}
		shard := ShardDuration(want.Duration)
		switch {
		case !found:
			err = a.exec(ctx, fmt.Sprintf("CREATE RETENTION POLICY %s ON %s DURATION %s REPLICATION 1 SHARD DURATION %s",
				influx.QuoteIdent(want.Name), influx.QuoteIdent(p.Database), duration(want.Duration), duration(shard)))
		case have.duration != want.Duration || have.shard != shard:
			err = a.exec(ctx, fmt.Sprintf("ALTER RETENTION POLICY %s ON %s DURATION %s SHARD DURATION %s",
				influx.QuoteIdent(have.name), influx.QuoteIdent(p.Database), duration(want.Duration), duration(shard)))
		}
		if err != nil {
			return err
		}
	}
	users, err := a.users(ctx)
	if err != nil {
		return err
	}
	for _, u := range p.Users {
		if u.Privilege != Read && u.Privilege != Write {
			return fmt.Errorf("influxdb user %s: privilege %q", u.Name, u.Privilege)
		}
		admin, exists := users[u.Name]
		stmts := []string{"CREATE USER " + influx.QuoteIdent(u.Name) + " WITH PASSWORD " + influx.QuoteString(u.Password)}
		if exists {
			stmts = []string{"SET PASSWORD FOR " + influx.QuoteIdent(u.Name) + " = " + influx.QuoteString(u.Password)}
			if admin {
				stmts = append(stmts, "REVOKE ALL PRIVILEGES FROM "+influx.QuoteIdent(u.Name))
			}
		}
		// GRANT sets the user's privilege on the database, whatever it was.
		stmts = append(stmts, fmt.Sprintf("GRANT %s ON %s TO %s", u.Privilege, influx.QuoteIdent(p.Database), influx.QuoteIdent(u.Name)))
		for _, s := range stmts {
			if err := a.exec(ctx, s); err != nil {
				return fmt.Errorf("influxdb user %s: %w", u.Name, err)
			}
		}
	}
	return nil
}

type policy struct {
	name            string
	duration, shard time.Duration
	isDefault       bool
}

// ShardDuration is the shard group duration InfluxDB 1.8 gives a new policy
// of duration d: 1 h below 2 days, 1 day up to 6 months, 7 days beyond. It is
// set on an altered policy too (autogen's is 7 days, for ever), since
// InfluxDB drops a shard group only once all of it is past the duration:
// the disk holds up to the duration plus one shard group.
func ShardDuration(d time.Duration) time.Duration {
	switch {
	case d < 48*time.Hour:
		return time.Hour
	case d <= 180*24*time.Hour:
		return 24 * time.Hour
	}
	return 7 * 24 * time.Hour
}

func (a Admin) policies(ctx context.Context, db string) ([]policy, error) {
	res, err := a.query(ctx, "SHOW RETENTION POLICIES ON "+influx.QuoteIdent(db))
	if err != nil {
		return nil, err
	}
	var out []policy
	for _, s := range res {
		col := columns(s.Columns)
		for _, v := range s.Values {
			name, _ := v[col["name"]].(string)
			d, _ := v[col["duration"]].(string)
			sg, _ := v[col["shardGroupDuration"]].(string)
			def, _ := v[col["default"]].(bool)
			dur, err := time.ParseDuration(d)
			if err != nil {
				return nil, fmt.Errorf("retention policy %s: duration %q: %w", name, d, err)
			}
			shard, err := time.ParseDuration(sg)
			if err != nil {
				return nil, fmt.Errorf("retention policy %s: shard group duration %q: %w", name, sg, err)
			}
			out = append(out, policy{name: name, duration: dur, shard: shard, isDefault: def})
		}
	}
	return out, nil
}

// users returns every user and whether it is an admin.
func (a Admin) users(ctx context.Context) (map[string]bool, error) {
	res, err := a.query(ctx, "SHOW USERS")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range res {
		col := columns(s.Columns)
		for _, v := range s.Values {
			name, _ := v[col["user"]].(string)
			admin, _ := v[col["admin"]].(bool)
			out[name] = admin
		}
	}
	return out, nil
}

func columns(cols []string) map[string]int {
	m := make(map[string]int, len(cols))
	for i, c := range cols {
		m[c] = i
	}
	return m
}

func (a Admin) exec(ctx context.Context, q string) error {
	_, err := a.query(ctx, q)
	return err
}

// query runs one InfluxQL statement as the admin. Statements carry
// passwords: errors name the statement's verb only.
func (a Admin) query(ctx context.Context, q string) ([]influx.Series, error) {
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	verb, _, _ := strings.Cut(q, " ")
	return influx.QueryClient{URL: a.URL, HTTP: c, User: a.User, Password: a.Password}.Query(ctx, url.Values{"q": {q}}, verb)
}

// duration is d in InfluxQL's whole hours (every duration here is days).
func duration(d time.Duration) string {
	return fmt.Sprintf("%dh", int64(d/time.Hour))
}
