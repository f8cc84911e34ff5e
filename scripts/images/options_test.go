package main

import (
	"strings"
	"testing"
)

func TestParsePlatforms(t *testing.T) {
	got, err := ParsePlatforms(defaultPlatforms)
	if err != nil {
		t.Fatal(err)
	}
	want := []Platform{{"linux", "amd64", ""}, {"linux", "arm64", ""}, {"linux", "arm", "v7"}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("platform %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if env := strings.Join(got[2].GoEnv(), " "); env != "GOOS=linux GOARCH=arm GOARM=7" {
		t.Errorf("linux/arm/v7 go env %q", env)
	}
	if got[2].Dir() != "linux_arm_v7" || got[2].String() != "linux/arm/v7" {
		t.Errorf("names %s %s", got[2].Dir(), got[2])
	}
	if p, err := ParsePlatform("linux/arm64/v8"); err != nil || p.Variant != "" {
		t.Errorf("linux/arm64/v8: %+v %v, want the same as linux/arm64", p, err)
	}
	if ps, _ := ParsePlatforms("linux/amd64,linux/amd64"); len(ps) != 1 {
		t.Errorf("duplicates kept: %v", ps)
	}
	for _, bad := range []string{"", "linux", "windows/amd64", "linux/arm", "linux/arm/v9", "linux/riscv64", "linux/amd64/v3"} {
		if _, err := ParsePlatforms(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSelectImages(t *testing.T) {
	s, tp, err := selectImages("", false)
	if err != nil || strings.Join(s, ",") != "ingest,processor,notifier,dashboard" || len(tp) != 0 {
		t.Errorf("default: %v %v %v", s, tp, err)
	}
	s, tp, err = selectImages("", true)
	if err != nil || len(s) != 4 || strings.Join(tp, ",") != "nats,mosquitto,influxdb" {
		t.Errorf("-thirdparty: %v %v %v", s, tp, err)
	}
	s, tp, err = selectImages("processor, ingest,nats,ingest", false)
	if err != nil || strings.Join(s, ",") != "processor,ingest" || strings.Join(tp, ",") != "nats" {
		t.Errorf("-only: %v %v %v", s, tp, err)
	}
	if _, _, err := selectImages("ingest,redis", false); err == nil || !strings.Contains(err.Error(), `"redis"`) {
		t.Errorf("unknown name: %v", err)
	}
	if _, _, err := selectImages(" , ", false); err == nil {
		t.Error("an -only naming nothing was accepted")
	}
}

func TestLddParsing(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007fafb1282000)
	libcrypto.so.3 => /lib/x86_64-linux-gnu/libcrypto.so.3 (0x00007fafb0c00000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fafb0a1e000)
	/lib64/ld-linux-x86-64.so.2 (0x00007fafb1284000)
`
	libs, err := parseLdd("x", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(libs, " "); got != "/lib/x86_64-linux-gnu/libcrypto.so.3 /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2" {
		t.Errorf("libs %s", got)
	}
	if _, err := parseLdd("x", []byte("\tlibfoo.so.1 => not found\n")); err == nil {
		t.Error("a missing library was accepted")
	}
	if UpstreamVersion("2.0.11-1.2+deb12u2") != "2.0.11" || UpstreamVersion("1:2.0.11-1") != "2.0.11" {
		t.Error("UpstreamVersion")
	}
}

func TestSharedLibrariesOfARealBinary(t *testing.T) {
	libs, err := SharedLibraries(t.Context(), "/bin/ls")
	if err != nil {
		t.Skipf("ldd /bin/ls: %v", err)
	}
	var libc, loader bool
	for _, l := range libs {
		libc = libc || strings.Contains(l, "/libc.so")
		loader = loader || strings.Contains(l, "/ld-linux")
	}
	if !libc || !loader {
		t.Errorf("ldd /bin/ls gave %v: want libc and the dynamic loader", libs)
	}
}
