// agentcost reviewer console: plain JavaScript over the decision API of this origin.
// The reviewer token lives in sessionStorage (this tab only) and is sent only as the bearer token.
"use strict";

const TOKEN_KEY = "agentcost.token";
const POLL_MS = 3000;
let mode = "unknown"; // "open", "token" or "signin"
let timer = null;

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || (data && data.message) || ("HTTP " + res.status));
    err.status = res.status;
    throw err;
  }
  return data;
}

// Money like agentcostctl: exact amounts to the nano-dollar, trailing zeros trimmed.
function usd(f) {
  if (typeof f !== "number" || !isFinite(f)) return "";
  const n = Math.round(f * 1e9) / 1e9;
  return "$" + n.toFixed(9).replace(/\.?0+$/, "");
}
// Forecasts like agentcostctl: to the cent.
function usdCents(f) {
  if (typeof f !== "number" || !isFinite(f)) return "";
  return "$" + String(Math.round(f * 100) / 100);
}
function percent(r) { return (r * 100).toFixed(1) + "%"; }

// Times in the viewer's zone, UTC in the title.
function timeCell(td, iso) {
  if (!iso) return td;
  const d = new Date(iso);
  td.textContent = d.toLocaleString();
  td.title = d.toISOString().replace(".000Z", "Z") + " UTC";
  return td;
}
function since(iso) {
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

async function listAll(path, key) {
  let out = [];
  let cursor = "";
  for (let i = 0; i < 20; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", path + (cursor ? sep + "cursor=" + encodeURIComponent(cursor) : ""));
    out = out.concat(page[key] || []);
    cursor = page.next_cursor || "";
    if (!cursor) break;
  }
  return out;
}

// ---- Approvals ----
async function renderApprovals() {
  const all = await listAll("/v1/approvals?limit=200", "approvals");
  const pending = all.filter((a) => a.state === "pending");
  const resolved = all.filter((a) => a.state !== "pending").sort((a, b) => (b.decided_at || b.created_at).localeCompare(a.decided_at || a.created_at));
  const tb = $("pending").tBodies[0];
  const focused = document.activeElement && document.activeElement.closest("#pending") ? document.activeElement.id : "";
  const typed = {};
  tb.querySelectorAll("input").forEach((i) => { typed[i.id] = i.value; });
  tb.replaceChildren();
  for (const a of pending) {
    const tr = document.createElement("tr");
    tr.id = "approval-" + a.approval_id;
    tr.dataset.approvalId = a.approval_id;
    cell(tr, a.agent_id);
    cell(tr, a.action);
    cell(tr, usd(a.estimated_cost_usd), "num");
    cell(tr, a.rule_id);
    cell(tr, a.reason);
    timeCell(cell(tr, ""), a.created_at).textContent = since(a.created_at);
    timeCell(cell(tr, ""), a.expires_at);
    const td = cell(tr, "", "answer");
    const capId = "cap-" + a.approval_id, reasonId = "reason-" + a.approval_id;
    const capLabel = document.createElement("label");
    capLabel.htmlFor = capId; capLabel.textContent = "Cost cap $";
    const cap = document.createElement("input");
    cap.id = capId; cap.inputMode = "decimal"; cap.autocomplete = "off"; cap.value = typed[capId] || "";
    // Optional tighter constraints, sent only when filled (POST .../approve "constraints").
    const limits = [];
    for (const [key, label] of APPROVE_LIMITS) {
      const id = key.replaceAll("_", "-") + "-" + a.approval_id;
      const l = document.createElement("label");
      l.htmlFor = id; l.textContent = label;
      const input = document.createElement("input");
      input.id = id; input.inputMode = "numeric"; input.autocomplete = "off"; input.value = typed[id] || "";
      input.dataset.constraint = key;
      limits.push([key, input]);
      td.append(l, input);
    }
    const rLabel = document.createElement("label");
    rLabel.htmlFor = reasonId; rLabel.textContent = "Reason";
    const reason = document.createElement("input");
    reason.id = reasonId; reason.autocomplete = "off"; reason.value = typed[reasonId] || "";
    const approve = button("Approve", "Approve " + a.action + " by " + a.agent_id, () => answer(a, "approve", cap.value, reason.value, limits));
    approve.className = "approve";
    approve.id = "approve-" + a.approval_id;
    const deny = button("Deny", "Deny " + a.action + " by " + a.agent_id, () => answer(a, "deny", cap.value, reason.value));
    deny.className = "deny";
    deny.id = "deny-" + a.approval_id;
    td.prepend(capLabel, cap);
    td.append(rLabel, reason, approve, deny);
    tb.appendChild(tr);
  }
  $("pending-empty").hidden = pending.length > 0;
  if (focused && $(focused)) $(focused).focus();
  const rb = $("resolved").tBodies[0];
  rb.replaceChildren();
  for (const a of resolved.slice(0, 100)) {
    const tr = document.createElement("tr");
    tr.dataset.approvalId = a.approval_id;
    cell(tr, a.agent_id);
    cell(tr, a.action);
    cell(tr, usd(a.estimated_cost_usd), "num");
    cell(tr, a.state, "state");
    cell(tr, a.reviewer);
    timeCell(cell(tr, ""), a.decided_at || "");
    cell(tr, a.comment);
    const ev = cell(tr, "");
    if (a.evidence_id) {
      const link = document.createElement("a");
      link.href = "#action/" + encodeURIComponent(a.evidence_id);
      link.textContent = "evidence";
      link.setAttribute("aria-label", "evidence of " + a.action + " by " + a.agent_id);
      ev.appendChild(link);
    }
    rb.appendChild(tr);
  }
}

// APPROVE_LIMITS are the constraints a reviewer may tighten on approve: [API key, label].
const APPROVE_LIMITS = [["max_runtime_sec", "Max runtime s"], ["max_tokens", "Max tokens"], ["max_retries", "Max retries"], ["max_tool_calls", "Max tool calls"]];

async function answer(a, verb, cap, reason, limits) {
  try {
    let body;
    if (verb === "approve") {
      body = {};
      if (cap.trim() !== "") {
        const v = Number(cap);
        if (!isFinite(v) || v < 0) { showError("The cost cap must be a dollar amount"); return; }
        body.cost_cap_usd = v;
      }
      const constraints = {};
      for (const [key, input] of limits || []) {
        const t = input.value.trim();
        if (t === "") continue;
        if (!/^[0-9]+$/.test(t)) { showError(key + " must be a whole number"); return; }
        constraints[key] = Number(t);
      }
      if (Object.keys(constraints).length > 0) body.constraints = constraints;
      if (reason.trim() !== "") body.comment = reason.trim();
    } else {
      body = { reason: reason.trim() };
    }
    await api("POST", "/v1/approvals/" + encodeURIComponent(a.approval_id) + "/" + verb, body);
    showError("");
    await refresh();
  } catch (e) {
    showError(verb + " failed: " + e.message);
  }
}

// ---- Budgets ----
async function renderBudgets() {
  // Sorted on the server, highest utilization first; the first 1000 scopes are shown.
  const first = await api("GET", "/v1/budgets?order=utilization&limit=1000");
  const scopes = first.scopes || [];
  $("fleet-level").textContent = "Fleet level: " + (first.fleet ? first.fleet.name : "") + " (policy " + first.policy_version + ")";
  const tb = $("budgets").tBodies[0];
  tb.replaceChildren();
  for (const s of scopes) tb.appendChild(budgetRow(s));
  if (lookedUpRun !== "") await showRun(lookedUpRun);
}

// budgetRow is one scope's row: spent, reserved, limit, a utilization bar, level and forecast.
function budgetRow(s) {
  const tr = document.createElement("tr");
  tr.className = "level-" + s.level;
  tr.dataset.scope = s.scope + ":" + (s.id || "");
  cell(tr, s.scope);
  cell(tr, s.id || "(all)");
  cell(tr, s.window);
  cell(tr, usd(s.spent_usd), "num spent");
  cell(tr, usd(s.reserved_usd), "num");
  cell(tr, usd(s.limit_usd), "num");
  const u = cell(tr, "", "util");
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.setAttribute("role", "meter");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  bar.setAttribute("aria-valuenow", String(Math.round(Math.min(1, s.utilization) * 100)));
  bar.setAttribute("aria-label", "utilization of " + s.scope + " " + (s.id || ""));
  const fill = document.createElement("span");
  fill.style.width = Math.min(100, Math.max(0, s.utilization * 100)).toFixed(1) + "%";
  bar.appendChild(fill);
  u.append(bar, document.createTextNode(percent(s.utilization)));
  cell(tr, s.level, "level");
  const f = cell(tr, usdCents(s.forecast_usd), "num");
  if (s.window_end) f.title = "window ends " + new Date(s.window_end).toLocaleString() + " (" + new Date(s.window_end).toISOString() + " UTC)";
  return tr;
}

// lookedUpRun is the run id last looked up on the budgets page; each refresh reads it again.
let lookedUpRun = "";

// showRun reads one run's budget through POST /v1/explain, which reserves, counts and records
// nothing: GET /v1/budgets does not list runs. The run budget does not depend on the agent, so
// the request names a placeholder agent and action.
async function showRun(runId) {
  const res = await api("POST", "/v1/explain", { agent_id: "agentcost-console", action: "console.run-lookup", run_id: runId });
  const b = res.budget && res.budget.run;
  const tb = $("run-budget").tBodies[0];
  tb.replaceChildren();
  if (!b) {
    $("run-result").textContent = "The policy sets no run budget (budgets.runs), so runs have nothing to show.";
    $("run-budget").hidden = true;
    return;
  }
  $("run-result").textContent = "Run " + runId + ":";
  tb.appendChild(budgetRow(Object.assign({ scope: "run", id: runId }, b)));
  $("run-budget").hidden = false;
}

// ---- Freezes ----
async function renderFreezes() {
  const list = await listAll("/v1/freezes?limit=200", "freezes");
  list.sort((a, b) => (a.state === "active" ? 0 : 1) - (b.state === "active" ? 0 : 1) || b.created_at.localeCompare(a.created_at));
  const tb = $("freezes").tBodies[0];
  tb.replaceChildren();
  for (const f of list) {
    const tr = document.createElement("tr");
    tr.dataset.freezeId = f.freeze_id;
    cell(tr, f.scope);
    cell(tr, f.scope_id || "(all)");
    cell(tr, f.reason);
    cell(tr, f.state + (f.lifted_by ? " by " + f.lifted_by : ""), "state");
    cell(tr, f.created_by);
    timeCell(cell(tr, ""), f.created_at);
    const td = cell(tr, "");
    if (f.state === "active") {
      const b = button("Lift", "Lift the freeze of " + f.scope + " " + (f.scope_id || ""), async () => {
        try { await api("DELETE", "/v1/freezes/" + encodeURIComponent(f.freeze_id)); showError(""); await refresh(); }
        catch (e) { showError("lift failed: " + e.message); }
      });
      b.className = "lift";
      td.appendChild(b);
    }
    tb.appendChild(tr);
  }
}

async function createFreeze(ev) {
  ev.preventDefault();
  const body = { scope: $("freeze-scope").value, reason: $("freeze-reason").value.trim() };
  const id = $("freeze-id").value.trim();
  if (id) body.scope_id = id;
  try {
    await api("POST", "/v1/freezes", body);
    $("freeze-reason").value = "";
    showError("");
    await refresh();
  } catch (e) {
    showError("freeze failed: " + e.message);
  }
}

// ---- Action (evidence) ----
function actionID() {
  const h = location.hash.slice(1);
  return h.startsWith("action/") ? decodeURIComponent(h.slice("action/".length)) : "";
}

async function renderAction() {
  const id = actionID();
  const tb = $("action-records").tBodies[0];
  if (!id) { tb.replaceChildren(); $("action-verified").textContent = ""; return; }
  if (document.activeElement !== $("action-id")) $("action-id").value = id;
  let out;
  try {
    out = await api("GET", "/v1/evidence/" + encodeURIComponent(id));
  } catch (e) {
    if (e.status === 404) { tb.replaceChildren(); $("action-verified").textContent = e.message; return; }
    throw e;
  }
  $("action-verified").textContent = out.verified
    ? "Chain verified up to these records (chain " + out.chain_id + ")."
    : "NOT VERIFIED: " + (out.problems || []).join("; ");
  tb.replaceChildren();
  for (const r of out.records) {
    const tr = document.createElement("tr");
    tr.dataset.kind = r.kind;
    cell(tr, r.seq, "num");
    cell(tr, r.kind, "kind");
    timeCell(cell(tr, ""), r.time);
    cell(tr, r.agent_id);
    cell(tr, r.action);
    cell(tr, r.decision || r.outcome || r.level || "");
    cell(tr, r.estimated_cost_usd ? usd(r.estimated_cost_usd) : "", "num");
    cell(tr, r.kind === "settlement" || r.kind === "anomaly" ? usd(r.actual_cost_usd || 0) + (r.cost_source ? " (" + r.cost_source + ")" : "") : "", "num");
    cell(tr, r.kind === "settlement" || r.kind === "anomaly" ? String(r.spans_matched || 0) : "", "num");
    cell(tr, r.anomaly ? (r.anomaly.anomalous ? "ANOMALY" : "no") : "");
    cell(tr, r.reviewer);
    cell(tr, [r.rule_id, r.reason].filter(Boolean).join(": "));
    tb.appendChild(tr);
  }
}

// ---- Routing, sign-in ----
const PAGES = ["approvals", "budgets", "freezes", "action"];
function page() {
  const p = (location.hash || "#approvals").slice(1).split("/")[0];
  return PAGES.includes(p) ? p : "approvals";
}

async function refresh() {
  if (mode !== "open" && mode !== "token") return;
  const p = page();
  for (const n of PAGES) {
    $("page-" + n).hidden = n !== p;
    if (n === p) $("nav-" + n).setAttribute("aria-current", "page"); else $("nav-" + n).removeAttribute("aria-current");
  }
  try {
    if (p === "approvals") await renderApprovals();
    else if (p === "budgets") await renderBudgets();
    else if (p === "freezes") await renderFreezes();
    else await renderAction();
    document.body.dataset.loaded = p;
  } catch (e) {
    if (e.status === 401) { signOut("Your token was refused; sign in again."); return; }
    showError(e.message);
  }
}

function showSignin(msg) {
  mode = "signin";
  for (const n of PAGES) $("page-" + n).hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("who").textContent = "";
  showError(msg || "");
  $("token").focus();
}

function signOut(msg) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) { clearInterval(timer); timer = null; }
  showSignin(msg);
}

function start() {
  $("signin").hidden = true;
  $("open-banner").hidden = mode !== "open";
  $("signout").hidden = mode !== "token";
  $("who").textContent = mode === "open" ? "Open mode (no sign-in)" : "Signed in as a reviewer";
  refresh();
  if (!timer) timer = setInterval(refresh, POLL_MS);
}

// probe finds out whether the API is open, and whether a stored token is a reviewer's: the
// approvals listing is for reviewers only, so an agent token gets 403 and is refused here.
async function probe() {
  try {
    await api("GET", "/v1/approvals?limit=1");
    mode = token() ? "token" : "open";
    start();
  } catch (e) {
    if (e.status === 401) { if (token()) signOut("That token was refused."); else showSignin(""); return; }
    if (e.status === 403 && token()) { signOut("This console is for reviewers: an agent token cannot use it (agents read their budgets with GET /v1/budgets)."); return; }
    showSignin(e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    probe();
  });
  $("signout").addEventListener("click", () => signOut(""));
  $("freeze-form").addEventListener("submit", createFreeze);
  $("run-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    lookedUpRun = $("run-id").value.trim();
    if (lookedUpRun === "") return;
    try {
      await showRun(lookedUpRun);
      showError("");
    } catch (e) {
      showError("run lookup failed: " + e.message);
    }
  });
  $("action-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = "#action/" + encodeURIComponent($("action-id").value.trim());
  });
  window.addEventListener("hashchange", refresh);
  probe();
});
