// Package buildinfo describes the running binary from the build information the Go toolchain
// embeds: module version, VCS revision and Go version, for the CLIs' --version.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// String returns one line naming program, the main module's version ("(devel)" for a build from a
// work tree), the VCS revision and time when the build recorded them (with "+dirty" for a modified
// tree) and the Go version, e.g.
//
//	agentcostctl (devel) go1.26.0 revision f0c9596ab12c+dirty 2026-12-06T21:00:00Z
func String(program string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return program + " (no build information)"
	}
	return format(program, info)
}

func format(program string, info *debug.BuildInfo) string {
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	parts := []string{program, version, info.GoVersion}
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" {
		parts = append(parts, "revision "+rev[:min(12, len(rev))]+dirty)
	}
	if at != "" {
		parts = append(parts, at)
	}
	return strings.Join(parts, " ")
}
