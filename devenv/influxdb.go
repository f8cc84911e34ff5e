package devenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/edgeflow/edgeflow/devenv/influxadmin"
	"github.com/edgeflow/edgeflow/internal/influx"
)

// InfluxReadyTimeout bounds InfluxDB's start: well under a second with Flux
// off on an idle machine (3-4 s with Flux on), much slower under a parallel
// test run.
const InfluxReadyTimeout = 60 * time.Second

// InfluxServerEnv configures InfluxDB 1.8 for what the pipeline does to it.
//
// Devices: by default 1.8 keeps its index in memory and refuses a point
// whose tag value would be a measurement's 100,001st (the device tag past
// 100,000 devices) or whose series would be a database's 1,000,001st (about
// 140,000 devices of three metrics, with raw points and two window
// lengths). tsi1 keeps the index on disk and enforces neither limit; the
// limits are lifted too for shards created before, which keep their
// in-memory index.
//
// New devices while queried: tsi1 caches the series of a tag value
// (series-id-set-cache-size), and a query that fills the cache while new
// series are being created can cache the set without them; every later
// query with that tag predicate (WHERE "metric" = 'temperature') then
// misses them until the set is evicted (TestInfluxSeesSeriesCreatedWhileQueried).
// Off, as upstream later made the default.
//
// The dev cluster's image and manifests set the same.
var InfluxServerEnv = []string{
	"INFLUXDB_DATA_INDEX_VERSION=tsi1",
	"INFLUXDB_DATA_MAX_VALUES_PER_TAG=0",
	"INFLUXDB_DATA_MAX_SERIES_PER_DATABASE=0",
	"INFLUXDB_DATA_SERIES_ID_SET_CACHE_SIZE=0",
}

// InfluxOptions describe an InfluxDB 1.8.3 server for StartInfluxDB.
type InfluxOptions struct {
	// Bin is the influxd executable; empty means InfluxdBinary().
	Bin string
	// Dir holds meta/, data/, wal/ and the log. Required. Start again on the
	// same Dir and Port to get the same data back.
	Dir string
	// Port is the HTTP port on 127.0.0.1; 0 picks a free one.
	Port int
	// RPCPort is the backup/restore RPC port (INFLUXDB_BIND_ADDRESS, 8088 by
	// default, which could collide); 0 picks a free one.
	RPCPort int
	// Database, when set, is created after the start (CREATE DATABASE is
	// idempotent, so a restart on the same Dir is fine).
	Database string
	// AdminUser and AdminPassword, when set, turn authentication on; the
	// admin user is created at the first start.
	AdminUser, AdminPassword string
	// Plan, when set, is applied after the start as the admin
	// (influxadmin.Apply): the database, its retention policies with their
	// durations, the services' users. It runs at every start, so a changed
	// duration is applied on restart.
	Plan *influxadmin.Plan
	// Env adds INFLUXDB_* settings to the ones StartInfluxDB sets (later
	// ones win), such as a limit a test runs into:
	// INFLUXDB_DATA_MAX_VALUES_PER_TAG=10.
	Env []string
}

// InfluxdBinary returns $EDGEFLOW_INFLUXD if set, else <repo>/.bin/influxd,
// where scripts/install-influxdb.sh builds it.
func InfluxdBinary() (string, error) {
	bin := os.Getenv("EDGEFLOW_INFLUXD")
	if bin == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("find influxd: %w", err)
		}
		bin = filepath.Join(root, ".bin", "influxd")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("influxd %w at %s: run scripts/install-influxdb.sh (or set EDGEFLOW_INFLUXD)", ErrNotInstalled, bin)
	}
	return bin, nil
}

// StartInfluxDB starts InfluxDB 1.8.3 on 127.0.0.1, configured by environment
// only, with Flux off (1.8's default: edgeflow reads with InfluxQL on /query,
// which every InfluxDB version serves), and waits until GET /ping answers 204. The returned
// Process has Addr and URL (http://host:port), which is also the URL of the
// 2.x API; the bucket of Database is "<Database>/autogen" or "<Database>".
func StartInfluxDB(ctx context.Context, opts InfluxOptions) (*Process, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("start influxdb: no Dir")
	}
	if opts.Bin == "" {
		bin, err := InfluxdBinary()
		if err != nil {
			return nil, err
		}
		opts.Bin = bin
	}
	if opts.Port == 0 || opts.RPCPort == 0 {
		ports, err := FreePorts(2)
		if err != nil {
			return nil, fmt.Errorf("start influxdb: %w", err)
		}
		if opts.Port == 0 {
			opts.Port = ports[0]
		}
		if opts.RPCPort == 0 {
			opts.RPCPort = ports[1]
		}
	}
	if opts.AdminUser != "" {
		opts.Env = append([]string{"INFLUXDB_HTTP_AUTH_ENABLED=true"}, opts.Env...)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start influxdb: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))
	baseURL := "http://" + addr
	p, err := StartProcess(ctx, ProcessOptions{
		Name: "influxd",
		Bin:  opts.Bin,
		Args: []string{"run"},
		Env: append(append([]string{
			"INFLUXDB_REPORTING_DISABLED=true",
			"INFLUXDB_BIND_ADDRESS=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.RPCPort)),
			"INFLUXDB_META_DIR=" + filepath.Join(dir, "meta"),
			"INFLUXDB_DATA_DIR=" + filepath.Join(dir, "data"),
			"INFLUXDB_DATA_WAL_DIR=" + filepath.Join(dir, "wal"),
			// The _internal database would only cost writes and disk.
			"INFLUXDB_MONITOR_STORE_ENABLED=false",
			// Per-query and per-request logs drown the useful lines that a
			// failing test quotes from the log.
			"INFLUXDB_DATA_QUERY_LOG_ENABLED=false",
			"INFLUXDB_HTTP_LOG_ENABLED=false",
			"INFLUXDB_HTTP_BIND_ADDRESS=" + addr,
		}, InfluxServerEnv...), opts.Env...),
		Dir:          dir,
		Addr:         addr,
		URL:          baseURL,
		ReadyURL:     baseURL + "/ping",
		ReadyTimeout: InfluxReadyTimeout,
	})
	if err != nil {
		return nil, err
	}
	if opts.AdminUser != "" || opts.Plan != nil {
		if err := setupInflux(ctx, baseURL, opts); err != nil {
			_ = p.Stop(context.Background())
			return nil, fmt.Errorf("start influxdb: %w", err)
		}
	}
	if opts.Database != "" {
		if err := CreateInfluxDatabase(ctx, baseURL, opts.Database); err != nil {
			_ = p.Stop(context.Background())
			return nil, fmt.Errorf("start influxdb: %w", err)
		}
	}
	return p, nil
}

// setupInflux creates the admin user and applies the plan.
func setupInflux(ctx context.Context, baseURL string, opts InfluxOptions) error {
	admin := influxadmin.Admin{URL: baseURL, User: opts.AdminUser, Password: opts.AdminPassword}
	if opts.AdminUser != "" {
		if err := influxadmin.CreateAdmin(ctx, admin); err != nil {
			return err
		}
	}
	if opts.Plan == nil {
		return nil
	}
	return influxadmin.Apply(ctx, admin, *opts.Plan)
}

// CreateInfluxDatabase creates database db on the InfluxDB 1.x server at
// baseURL with InfluxQL (writes do not create it, and the 2.x API has no
// buckets endpoint on 1.8). It is idempotent.
func CreateInfluxDatabase(ctx context.Context, baseURL, db string) error {
	q := "CREATE DATABASE " + influx.QuoteIdent(db)
	_, err := influx.QueryClient{URL: baseURL}.Query(ctx, url.Values{"q": {q}}, q)
	return err
}
