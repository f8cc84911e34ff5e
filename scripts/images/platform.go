package main

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// defaultPlatforms are the platforms of the K3s agents edgeflow runs on:
// x86 servers, 64-bit ARM boards and 32-bit Raspberry Pi class boards.
const defaultPlatforms = "linux/amd64,linux/arm64,linux/arm/v7"

// Platform is one OS/architecture/variant triple an image is built for.
type Platform struct {
	OS, Arch, Variant string
}

// ParsePlatform reads "linux/amd64", "linux/arm64" or "linux/arm/v7".
// Only Linux is accepted (the images run on K3s nodes), and 32-bit ARM needs
// its variant because GOARM has to be chosen for the build.
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/arm/v7", s)
	}
	p := Platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if p.OS != "linux" {
		return Platform{}, fmt.Errorf("platform %q: only linux images are built", s)
	}
	switch p.Arch {
	case "amd64", "arm64":
		if p.Variant != "" && !(p.Arch == "arm64" && p.Variant == "v8") {
			return Platform{}, fmt.Errorf("platform %q: unknown variant %q", s, p.Variant)
		}
		p.Variant = ""
	case "arm":
		switch p.Variant {
		case "v6", "v7":
		case "":
			return Platform{}, fmt.Errorf("platform %q: linux/arm needs a variant, e.g. linux/arm/v7", s)
		default:
			return Platform{}, fmt.Errorf("platform %q: unknown variant %q (v6 or v7)", s, p.Variant)
		}
	default:
		return Platform{}, fmt.Errorf("platform %q: unsupported architecture %q (amd64, arm64, arm)", s, p.Arch)
	}
	return p, nil
}

// ParsePlatforms reads a comma-separated list, dropping duplicates.
func ParsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	seen := map[Platform]bool{}
	for f := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		p, err := ParsePlatform(f)
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform in %q", s)
	}
	return out, nil
}

// HostPlatform is the platform of the machine running this command, the
// one the dev cluster's containerd runs.
func HostPlatform() Platform {
	p := Platform{OS: "linux", Arch: runtime.GOARCH}
	if p.Arch == "arm" {
		p.Variant = "v7"
	}
	return p
}

func (p Platform) String() string {
	if p.Variant == "" {
		return p.OS + "/" + p.Arch
	}
	return p.OS + "/" + p.Arch + "/" + p.Variant
}

// Dir is the platform as a file name: linux_arm_v7.
func (p Platform) Dir() string { return strings.ReplaceAll(p.String(), "/", "_") }

// GoEnv is the environment that makes `go build` target the platform.
func (p Platform) GoEnv() []string {
	env := []string{"GOOS=" + p.OS, "GOARCH=" + p.Arch}
	if p.Arch == "arm" {
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	return env
}

// V1 is the platform as it appears in image configs and index entries.
func (p Platform) V1() v1.Platform {
	return v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
}
