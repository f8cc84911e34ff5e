package manifests

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// What Mosquitto's memory is made of, measured on 2.0.11 (docs/operations.md,
// "Mosquitto's memory"). An OOM kill of the broker loses every queue since its last
// autosave, so the queues it may hold must fit in its container's limit.
const (
	// MosquittoPerMessage is what a queued or in-flight message costs beyond its payload:
	// about 315 bytes plus its topic were measured, and a reading's topic is at most 202
	// bytes ("sensors/" and three names of reading.MaxNameLen).
	MosquittoPerMessage = 640
	// MosquittoIdle is the broker with its TLS listener and no client.
	MosquittoIdle = 10 << 20
	// MosquittoPerConnection is a device's TLS connection (46 KB measured) and session.
	MosquittoPerConnection = 48 << 10
	// MosquittoConnections is how many device connections the budget is for.
	MosquittoConnections = 500
	// MosquittoHeadroom is the part of the container's limit left free, in percent.
	MosquittoHeadroom = 10
)

// mosquittoBudget checks that what Mosquitto may hold stays MosquittoHeadroom below its
// container's memory limit: each of sessions (persistent sessions that subscribe) may
// queue max_queued_bytes of payload in max_queued_messages messages, plus
// max_inflight_messages in flight (max_queued_bytes counts those too), each message
// costing MosquittoPerMessage beyond its payload; on top, the idle broker and
// MosquittoConnections device connections. It returns the arithmetic.
func mosquittoBudget(conf string, limit int64, sessions int) (string, error) {
	settings := map[string]int64{}
	for line := range strings.Lines(conf) {
		f := strings.Fields(line)
		if len(f) != 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "max_queued_messages", "max_queued_bytes", "max_inflight_messages", "memory_limit":
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return "", fmt.Errorf("%s: %v", strings.TrimSpace(line), err)
			}
			settings[f[0]] = v
		}
	}
	for _, k := range []string{"max_queued_messages", "max_queued_bytes", "max_inflight_messages"} {
		// 0 is Mosquitto's "no limit"; unset, its defaults (1000 queued messages, which
		// drop QoS 1 after a minute of ingest down, and 20 in flight) are not what we want.
		if settings[k] <= 0 {
			return "", fmt.Errorf("%s %d: each bound must be set and above 0; without all three the queues' memory has no bound (a queued message costs its payload plus about 315 bytes and its topic)", k, settings[k])
		}
	}
	perSession := settings["max_queued_bytes"] + (settings["max_queued_messages"]+settings["max_inflight_messages"])*MosquittoPerMessage
	baseline := int64(MosquittoIdle + MosquittoConnections*MosquittoPerConnection)
	need := int64(sessions)*perSession + baseline
	mib := func(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }
	sum := fmt.Sprintf("%d session(s) x (max_queued_bytes %s + (max_queued_messages %d + max_inflight_messages %d) x %d B) + idle %s + %d connections x %d KiB = %s, limit %s",
		sessions, mib(settings["max_queued_bytes"]), settings["max_queued_messages"], settings["max_inflight_messages"], MosquittoPerMessage,
		mib(MosquittoIdle), MosquittoConnections, MosquittoPerConnection>>10, mib(need), mib(limit))
	if need > limit*(100-MosquittoHeadroom)/100 {
		return sum, fmt.Errorf("mosquitto may need more than %d%% of its memory limit, and an OOM kill loses every queue: %s", 100-MosquittoHeadroom, sum)
	}
	// Mosquitto 2.0.11 exits (status 255, without writing mosquitto.db) once its heap
	// passes memory_limit, rather than refusing publishes: a memory_limit the queues can
	// reach ends the broker just as the OOM killer would.
	if ml := settings["memory_limit"]; ml > 0 && ml < need {
		return sum, fmt.Errorf("memory_limit %s is below what the queues may hold (%s): Mosquitto 2.0.11 exits when its heap passes it", mib(ml), sum)
	}
	return sum, nil
}

// aclReaders are the users a Mosquitto ACL lets read (subscribe to) any topic; "pattern"
// lines, which apply to every user, count as "*".
func aclReaders(acl string) []string {
	var readers []string
	user := ""
	for line := range strings.Lines(acl) {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		who := user
		switch f[0] {
		case "user":
			user = f[1]
			continue
		case "pattern":
			who = "*"
		case "topic":
		default:
			continue
		}
		// topic [read|write|readwrite|deny] <topic>; without an access word, readwrite.
		if access := f[1]; len(f) == 2 || access == "read" || access == "readwrite" {
			if !slices.Contains(readers, who) {
				readers = append(readers, who)
			}
		}
	}
	return readers
}

// checkMosquitto checks the broker's memory against the configuration its pod mounts:
// only ingest may subscribe (so its replicas are the only sessions that queue), and
// their queues fit the container (mosquittoBudget).
func checkMosquitto(t *testing.T, workloads []Object, configMaps map[string]Object, ingest IngestSubscription) {
	t.Helper()
	for _, w := range workloads {
		if w.Metadata.Name != "mosquitto" {
			continue
		}
		var cm Object
		for _, v := range w.Spec.Template.Spec.Volumes {
			if v.Name == "config" && v.ConfigMap != nil {
				cm = configMaps[v.ConfigMap.Name]
			}
		}
		conf, acl := cm.Data["mosquitto.conf"], cm.Data["acl"]
		if conf == "" || acl == "" {
			t.Errorf("mosquitto: no mosquitto.conf and acl in the ConfigMap of its config volume")
			return
		}
		if r := aclReaders(acl); !slices.Equal(r, []string{"ingest"}) {
			t.Errorf("mosquitto: the ACL lets %v read; the memory budget counts only ingest's sessions", r)
		}
		for _, c := range w.Spec.Template.Spec.Containers {
			if c.Name != "mosquitto" {
				continue
			}
			limit, err := bytesOf(c.Resources.Limits["memory"])
			if err != nil {
				t.Errorf("mosquitto: memory limit: %v", err)
				return
			}
			sum, err := mosquittoBudget(conf, limit, ingest.Replicas)
			if err != nil {
				t.Errorf("mosquitto: %v", err)
				return
			}
			t.Logf("mosquitto: %s", sum)
			return
		}
	}
	t.Errorf("no mosquitto StatefulSet with a container named mosquitto")
}

// The budget's arithmetic: what passes and what fails.
func TestMosquittoBudget(t *testing.T) {
	const bounded = "max_queued_messages 100000\nmax_queued_bytes 33554432\nmax_inflight_messages 1000\n"
	// One session: 32 MiB + 101,000 x 640 B = 93.6 MiB, + 10 MiB + 500 x 48 KiB = 127.1 MiB.
	for _, tc := range []struct {
		name     string
		conf     string
		limit    int64
		sessions int
		wantErr  string
	}{
		{"bounded, one session", bounded, 192 << 20, 1, ""},
		{"bounded, two sessions", bounded, 192 << 20, 2, "more than 90%"},
		{"bounded, two sessions, room for both", bounded, 256 << 20, 2, ""},
		{"at the headroom", bounded, 142 << 20, 1, ""},
		{"in the headroom", bounded, 140 << 20, 1, "more than 90%"},
		{"no count bound", "max_queued_messages 0\nmax_queued_bytes 134217728\nmax_inflight_messages 1000\n", 192 << 20, 1, "max_queued_messages 0"},
		{"default count", "max_queued_bytes 134217728\nmax_inflight_messages 1000\n", 192 << 20, 1, "max_queued_messages 0"},
		{"no byte bound", "max_queued_messages 100000\nmax_inflight_messages 1000\n", 192 << 20, 1, "max_queued_bytes 0"},
		{"commented out", "# max_queued_messages 100000\nmax_queued_bytes 33554432\nmax_inflight_messages 1000\n", 192 << 20, 1, "max_queued_messages 0"},
		{"memory_limit the queues can reach", bounded + "memory_limit 67108864\n", 192 << 20, 1, "memory_limit"},
		{"memory_limit above them", bounded + "memory_limit 150000000\n", 192 << 20, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := mosquittoBudget(tc.conf, tc.limit, tc.sessions)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one with %q (%s)", err, tc.wantErr, sum)
			}
		})
	}
}

func TestACLReaders(t *testing.T) {
	for acl, want := range map[string][]string{
		"user ingest\ntopic read sensors/#\n\nuser device\ntopic write sensors/#\n": {"ingest"},
		"user ingest\ntopic read sensors/#\nuser ops\ntopic $SYS/#\n":               {"ingest", "ops"},
		"user device\ntopic readwrite sensors/#\n":                                  {"device"},
		"user device\ntopic deny sensors/#\npattern read sensors/%u/#\n":            {"*"},
		"# user ingest\n# topic read sensors/#\n":                                   nil,
	} {
		if got := aclReaders(acl); !slices.Equal(got, want) {
			t.Errorf("%q: readers %v, want %v", acl, got, want)
		}
	}
}
