package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/agentcost/agentcost", Version: "v0.2.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "f0c9596ab12cdeadbeef"}, {Key: "vcs.time", Value: "2026-12-06T21:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}
	if got, want := format("agentcostctl", info), "agentcostctl v0.2.0 go1.26.0 revision f0c9596ab12c+dirty 2026-12-06T21:00:00Z"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	bare := &debug.BuildInfo{GoVersion: "go1.26.0"}
	if got, want := format("agentsim", bare), "agentsim (devel) go1.26.0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestString reads this test binary's real build information.
func TestString(t *testing.T) {
	got := String("prog")
	if !strings.HasPrefix(got, "prog ") || !strings.Contains(got, runtime.Version()) {
		t.Errorf("String = %q, want the program and %s", got, runtime.Version())
	}
}
