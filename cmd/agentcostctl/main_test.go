package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCLI runs a command line in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLIContext(t, context.Background(), args...)
}

func runCLIContext(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runContext(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// lineWith returns the first line of out that starts with prefix, split into fields.
func lineWith(t *testing.T, out, prefix string) []string {
	t.Helper()
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.Fields(l)
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, out)
	return nil
}

// labelled returns the text after a "label:" at the start of a line of out, trimmed.
func labelled(t *testing.T, out, label string) string {
	t.Helper()
	for l := range strings.SplitSeq(out, "\n") {
		if rest, ok := strings.CutPrefix(l, label+":"); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("no %q line in:\n%s", label, out)
	return ""
}

func TestCommandTree(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{"no arguments", nil, exitUsage, "", "Commands:"},
		{"top-level help", []string{"--help"}, exitOK, "Exit codes:", ""},
		{"help word", []string{"help"}, exitOK, "policy", ""},
		{"group help", []string{"policy", "--help"}, exitOK, "lint", ""},
		{"group without subcommand", []string{"approvals"}, exitUsage, "", "approve"},
		{"unknown command", []string{"polcy"}, exitUsage, "", `unknown command "polcy"`},
		{"unknown subcommand", []string{"policy", "lnt"}, exitUsage, "", `unknown command "lnt" for "agentcostctl policy"`},
		{"leaf help", []string{"policy", "lint", "--help"}, exitOK, "--overlay FILE", ""},
		{"leaf help lists output", []string{"report", "-h"}, exitOK, "-o, --output", ""},
		{"unknown flag", []string{"policy", "lint", "--bogus", "x.yaml"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{"missing argument", []string{"evidence", "verify"}, exitUsage, "", "missing argument"},
		{"extra argument", []string{"prices", "lookup", "a", "b"}, exitUsage, "", `unexpected argument "b"`},
		{"bad output format", []string{"prices", "lookup", "gpt-4o", "-o", "yaml"}, exitUsage, "", `--output "yaml" is not one of table|json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantOut, out)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
		})
	}
}

func TestFlagsAfterArguments(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "p.yaml", "version: v1\ndefault_decision: allow\n")
	overlay := writeFile(t, dir, "o.yaml", "topics:\n  job.a: {timeout_seconds: 5}\n")
	// Flags may follow the positional argument, and "--" ends the flags.
	for _, args := range [][]string{
		{"policy", "lint", good, "--overlay", overlay},
		{"policy", "lint", "--overlay", overlay, good},
		{"policy", "lint", "--overlay", overlay, "--", good},
	} {
		if code, out, errOut := runCLI(t, args...); code != exitOK || !strings.Contains(out, ": ok:") {
			t.Errorf("%q: exit %d\n%s%s", args, code, out, errOut)
		}
	}
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "-"},
		{"research-agent", "research-agent"},
		{"a\tb\nc", "a\uFFFDb\uFFFDc"},
		{"\x1b[2Jevil", "\uFFFD[2Jevil"},
		{"abc\u202Edef", "abc\uFFFDdef"},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestForecastRounded: forecasts print to the cent (issue 13: "$4802.55307786").
func TestForecastRounded(t *testing.T) {
	for in, want := range map[float64]string{4802.55307786: "$4802.55", 12.5: "$12.5", 2300: "$2300", 0.035362449: "$0.04", 0: "$0"} {
		if got := usdForecast(in); got != want {
			t.Errorf("usdForecast(%v) = %q, want %q", in, got, want)
		}
	}
}
