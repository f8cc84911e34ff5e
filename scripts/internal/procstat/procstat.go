// Package procstat reads what Linux's /proc says a process (or the whole
// machine) has used: resident memory and CPU time. The bench and the
// footprint measurement sample our services and the cluster's components
// with it.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports (the kernel fixes it for the
// user ABI whatever CONFIG_HZ is).
const clockTicks = 100

// Sample is a process's resident memory and CPU time at one moment.
type Sample struct {
	RSSBytes   int64
	CPUSeconds float64
}

// Read reads RSS and user+system CPU time of pid from /proc.
func Read(pid int) (Sample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, err
	}
	return Parse(stat, os.Getpagesize())
}

// Parse reads utime (field 14), stime (15) and rss (24, in pages) from
// the contents of /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func Parse(stat []byte, pageSize int) (Sample, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return Sample{}, fmt.Errorf("parse /proc stat: no command name")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3 (state)
	if len(f) < 22 {
		return Sample{}, fmt.Errorf("parse /proc stat: %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	rss, err3 := strconv.ParseInt(f[21], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Sample{}, fmt.Errorf("parse /proc stat: utime %q stime %q rss %q", f[11], f[12], f[21])
	}
	return Sample{RSSBytes: rss * int64(pageSize), CPUSeconds: float64(utime+stime) / clockTicks}, nil
}

// MachineBusy returns the CPU time all cores spent not idle (user, nice,
// system, irq, softirq, steal; not idle or iowait), in seconds, from the
// first line of /proc/stat: with the wall time it shows how busy the whole
// machine was, other work included.
func MachineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return ParseMachineBusy(b)
}

func ParseMachineBusy(stat []byte) (float64, error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: first line %q", line)
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %q", v)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return float64(busy) / clockTicks, nil
}

// Memory is a process's resident memory two ways: RSS counts every page it
// maps, shared ones (a binary's text, libraries) in full for each process
// that maps them; PSS divides each shared page among its sharers, so the PSS
// of several processes adds up to what they take together.
type Memory struct {
	RSSBytes, PSSBytes int64
}

// ReadMemory reads /proc/<pid>/smaps_rollup (Linux 4.14 and later; another
// user's process needs root).
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Memory{}, err
	}
	return ParseSmapsRollup(b)
}

// ParseSmapsRollup reads the Rss and Pss lines (in kB) of smaps_rollup.
func ParseSmapsRollup(b []byte) (Memory, error) {
	var m Memory
	var seen int
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		var dst *int64
		switch f[0] {
		case "Rss:":
			dst = &m.RSSBytes
		case "Pss:":
			dst = &m.PSSBytes
		default:
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("parse smaps_rollup: %q", strings.TrimSpace(line))
		}
		*dst = kb << 10
		seen++
	}
	if seen != 2 {
		return Memory{}, fmt.Errorf("parse smaps_rollup: no Rss and Pss lines")
	}
	return m, nil
}
