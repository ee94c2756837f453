// Program agentcostctl is agentcost's operator CLI: it lints, tests and explains policies offline,
// asks a running budget receiver for decisions, budgets and approvals, verifies and tails the cost
// evidence chain, reports chargeback from it, and explains price-table matches.
//
// Exit codes: 0 ok; 1 findings (lint errors, a broken evidence chain, failed policy tests, a deny
// with --fail-on-deny, a model without a price, an invalid policy or price file); 2 usage error (bad flags or arguments, a malformed
// cases file, a request the server rejected with 4xx); 3 unreachable server or I/O error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/agentcost/agentcost/internal/buildinfo"
)

// Exit codes.
const (
	exitOK       = 0
	exitFindings = 1
	exitUsage    = 2
	exitIO       = 3
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns its exit code. An interrupt (SIGINT, SIGTERM) ends a
// following command such as `evidence tail -f` cleanly.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// env is what a command runs with.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// command is a node of the command tree: a leaf runs, a group dispatches to its subcommands.
type command struct {
	name    string
	summary string
	run     func(e *env, path string, args []string) error
	subs    []*command
}

func commands() *command {
	return &command{name: "agentcostctl", subs: []*command{
		{name: "policy", summary: "lint, test and explain policy files offline", subs: []*command{
			{name: "lint", summary: "validate a policy file and its overlays", run: policyLint},
			{name: "test", summary: "run a YAML file of decision test cases against a policy", run: policyTest},
			{name: "explain", summary: "explain offline how the policy decides a request", run: policyExplain},
		}},
		{name: "decide", summary: "ask the decision endpoint whether an action may run", run: decide},
		{name: "approvals", summary: "list, show, approve and deny approval requests", subs: []*command{
			{name: "list", summary: "list approval requests", run: approvalsList},
			{name: "get", summary: "show one approval request", run: approvalsGet},
			{name: "approve", summary: "approve a pending request, optionally with tighter constraints", run: approvalsApprove},
			{name: "deny", summary: "deny a pending request", run: approvalsDeny},
		}},
		{name: "budgets", summary: "show every budget's spend in its current window", run: budgets},
		{name: "freeze", summary: "freeze the fleet, a team, an agent or a run (the emergency brake)", run: freeze},
		{name: "unfreeze", summary: "lift a freeze", run: unfreeze},
		{name: "freezes", summary: "list the freezes in force (--all: every one)", run: freezesList},
		{name: "evidence", summary: "verify and tail the cost-evidence chain", subs: []*command{
			{name: "verify", summary: "check the hash chain of an evidence directory", run: evidenceVerify},
			{name: "tail", summary: "print the last evidence records, optionally following new ones", run: evidenceTail},
		}},
		{name: "report", summary: "chargeback of settled action costs from evidence", run: report},
		{name: "ledger-report", summary: "chargeback by agent, team, model or run from the budget ledger", run: ledgerReport},
		{name: "version", summary: "print the version, VCS revision and Go version (also --version)", run: printVersion},
		{name: "prices", summary: "explain price-table matches, check and refresh price files", subs: []*command{
			{name: "lookup", summary: "show which price entry a model matches and its rates", run: pricesLookup},
			{name: "info", summary: "show the embedded price table's upstream commit, sha256 and counts", run: pricesInfo},
			{name: "lint", summary: "load price files and list the entries skipped, by reason", run: pricesLint},
			{name: "refresh", summary: "check a newer upstream price map, diff it and make it the embedded default", run: pricesRefresh},
		}},
	}}
}

const exitCodesHelp = `Exit codes:
  0  ok
  1  findings: lint errors, evidence chain problems, failed policy tests, deny with --fail-on-deny,
     a model without a price, an invalid policy or price file
  2  usage error: bad flags or arguments, a malformed cases file, a request the server rejected (4xx)
  3  unreachable server, server error (5xx, 429) or I/O error
`

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, getenv: os.Getenv}
	cmd, path, rest := commands(), "agentcostctl", args
	if len(rest) > 0 && (rest[0] == "--version" || rest[0] == "-version") {
		rest = append([]string{"version"}, rest[1:]...)
	}
	for cmd.run == nil {
		if len(rest) == 0 || isHelp(rest[0]) || rest[0] == "help" {
			w := stdout
			code := exitOK
			if len(rest) == 0 {
				w, code = stderr, exitUsage
			}
			printGroupUsage(w, path, cmd)
			return code
		}
		sub := findSub(cmd, rest[0])
		if sub == nil {
			fmt.Fprintf(stderr, "agentcostctl: unknown command %q for %q\n", rest[0], path)
			printGroupUsage(stderr, path, cmd)
			return exitUsage
		}
		cmd, path, rest = sub, path+" "+sub.name, rest[1:]
	}
	err := cmd.run(e, path, rest)
	return exitCode(err, stderr)
}

// printVersion prints the build's version line (internal/buildinfo).
func printVersion(e *env, path string, args []string) error {
	fs := newFlags(e, path, "", "Prints agentcostctl's module version, VCS revision and Go version from its build information.")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, buildinfo.String("agentcostctl"))
	return nil
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

func findSub(c *command, name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func printGroupUsage(w io.Writer, path string, c *command) {
	fmt.Fprintf(w, "Usage: %s COMMAND [FLAGS] [ARGS]\n\nCommands:\n", path)
	width := 0
	for _, s := range c.subs {
		width = max(width, len(s.name))
	}
	for _, s := range c.subs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n\n%s", path, exitCodesHelp)
}

// cliError is an error with the exit code it ends the program with. An empty message prints
// nothing (the command has already printed its findings).
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *cliError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &cliError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func ioErr(err error) error { return &cliError{code: exitIO, err: err} }

// findings ends the program with exit code 1 without a further message.
func findings() error { return &cliError{code: exitFindings} }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	code := exitIO
	var ce *cliError
	if errors.As(err, &ce) {
		code = ce.code
	}
	if msg := strings.TrimSpace(err.Error()); msg != "" {
		// Messages that name the command (agentcostctl policy lint: ...) carry the program name.
		if !strings.HasPrefix(msg, "agentcostctl ") {
			msg = "agentcostctl: " + msg
		}
		fmt.Fprintln(stderr, msg)
	}
	return code
}
