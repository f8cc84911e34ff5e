package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profileStart is how far into a step the CPU profiles start: past the load
// generator's connect and the first windows.
const profileStart = 5 * time.Second

// profileStep takes, with -pprof, a CPU profile of every service of ours
// (EDGEFLOW_PPROF=true) and of NATS (prof_port) from profileStart into the step until 2 s before its
// load ends, then a heap profile of each, into dir as
// <rate>-<service>.cpu.pprof and .heap.pprof. Failures are logged, never
// fatal: the profiles are an aid, the step's figures stand without them.
func profileStep(ctx context.Context, members []*Member, dir string, rate float64, load time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	seconds := int((load - profileStart - 2*time.Second) / time.Second)
	if seconds < 1 {
		return &wg
	}
	for _, m := range members {
		if m.Pprof == "" {
			continue
		}
		base := m.Pprof
		prefix := filepath.Join(dir, fmt.Sprintf("%.0f-%s", rate, m.Name))
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(profileStart):
			}
			if err := fetchProfile(ctx, base+fmt.Sprintf("profile?seconds=%d", seconds), prefix+".cpu.pprof"); err != nil {
				logf("profile %s: %v", m.Name, err)
				return
			}
			if err := fetchProfile(ctx, base+"heap", prefix+".heap.pprof"); err != nil {
				logf("profile %s: %v", m.Name, err)
			}
		})
	}
	return &wg
}

func fetchProfile(ctx context.Context, url, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
