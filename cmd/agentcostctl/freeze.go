package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

func freeze(e *env, path string, args []string) error {
	fs := newFlags(e, path, "fleet | team ID | agent ID | run ID --reason TEXT [--for DURATION]", `
Freezes a scope (POST /v1/freezes), the emergency brake: every later decision in it is denied
with rule freeze and the reason, and guarded actions running in it are stopped at their next lease
check (pkg/guard: every 2s by default). The freeze holds until lifted (agentcostctl unfreeze) or
until --for passes. Reviewer role; the server records the reviewer's identity.`+onlineHelp)
	o := addOnlineFlags(fs)
	reason := fs.String("reason", "", "why the scope is frozen (`TEXT`, required; shown to the agents)")
	ttl := fs.Duration("for", 0, "end the freeze by itself after `DURATION` (e.g. 2h); default: until lifted")
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 1, 2)
	if err != nil {
		return err
	}
	req := decisionapi.FreezeRequest{Scope: decisionapi.FreezeScope(pos[0]), Reason: *reason}
	if len(pos) == 2 {
		req.ScopeID = pos[1]
	}
	if strings.TrimSpace(*reason) == "" {
		return usageErr("%s: --reason is required", path)
	}
	if *ttl < 0 || *ttl > 0 && *ttl < time.Second {
		return usageErr("%s: --for %s: want at least 1s", path, *ttl)
	}
	if *ttl > 0 {
		sec := int64((*ttl + time.Second - 1) / time.Second)
		req.ExpiresInSec = &sec
	}
	if err := req.Validate(); err != nil {
		return usageErr("%s: invalid freeze: %v", path, err)
	}
	c, err := o.client(e)
	if err != nil {
		return err
	}
	var f decisionapi.Freeze
	if err := c.do(e.ctx, http.MethodPost, decisionapi.PathFreezes, nil, req, &f); err != nil {
		return err
	}
	return showFreeze(e, *out, f)
}

func unfreeze(e *env, path string, args []string) error {
	fs := newFlags(e, path, "ID", `
Lifts a freeze (DELETE /v1/freezes/{id}): decisions in its scope follow the policy again. Reviewer
role.`+onlineHelp)
	o := addOnlineFlags(fs)
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := decisionapi.ValidateID("freeze id", pos[0]); err != nil {
		return usageErr("%s: %v", path, err)
	}
	c, err := o.client(e)
	if err != nil {
		return err
	}
	var f decisionapi.Freeze
	if err := c.do(e.ctx, http.MethodDelete, pathOf(decisionapi.PathFreeze, pos[0]), nil, nil, &f); err != nil {
		return err
	}
	return showFreeze(e, *out, f)
}

func freezesList(e *env, path string, args []string) error {
	fs := newFlags(e, path, "[--all]", `
Lists the freezes in force (GET /v1/freezes?state=active), oldest first; --all lists lifted and
expired ones too. Reviewer role.`+onlineHelp)
	o := addOnlineFlags(fs)
	all := fs.Bool("all", false, "list every freeze, not only the active ones")
	out := fs.output("table", "json")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	q := url.Values{}
	if !*all {
		q.Set("state", string(decisionapi.FreezeActive))
	}
	c, err := o.client(e)
	if err != nil {
		return err
	}
	var resp decisionapi.FreezeList
	err = getPages(e, c, decisionapi.PathFreezes, q, func(page *decisionapi.FreezeList) string {
		resp.Freezes = append(resp.Freezes, page.Freezes...)
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	if *out == "json" {
		if err := writeJSON(e.stdout, resp); err != nil {
			return ioErr(err)
		}
		return nil
	}
	if len(resp.Freezes) == 0 {
		fmt.Fprintln(e.stdout, "no freezes")
		return nil
	}
	t := newTable(e.stdout)
	row(t, "ID", "STATE", "SCOPE", "REASON", "BY", "CREATED", "EXPIRES")
	for _, f := range resp.Freezes {
		row(t, f.FreezeID, string(f.State), freezeScope(f), f.Reason, f.CreatedBy, formatTime(f.CreatedAt), formatTimePtr(f.ExpiresAt))
	}
	t.Flush()
	return nil
}

func showFreeze(e *env, out string, f decisionapi.Freeze) error {
	if out == "json" {
		if err := writeJSON(e.stdout, f); err != nil {
			return ioErr(err)
		}
		return nil
	}
	printFreeze(e.stdout, f)
	return nil
}

func freezeScope(f decisionapi.Freeze) string {
	if f.ScopeID == "" {
		return string(f.Scope)
	}
	return string(f.Scope) + " " + f.ScopeID
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return formatTime(*t)
}

func printFreeze(w io.Writer, f decisionapi.Freeze) {
	t := newTable(w)
	row(t, "freeze:", f.FreezeID)
	row(t, "state:", string(f.State))
	row(t, "scope:", freezeScope(f))
	row(t, "reason:", f.Reason)
	row(t, "frozen by:", f.CreatedBy)
	row(t, "created:", formatTime(f.CreatedAt))
	if f.ExpiresAt != nil {
		row(t, "expires:", formatTimePtr(f.ExpiresAt))
	}
	if f.LiftedAt != nil {
		row(t, "lifted by:", f.LiftedBy)
		row(t, "lifted:", formatTimePtr(f.LiftedAt))
	}
	t.Flush()
}
