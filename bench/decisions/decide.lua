-- wrk script of bench/decisions/run.sh: POSTs one kind of decision request, cycling through
-- many agent ids, and counts only the 2xx answers that carry the expected decision.
--   wrk -s decide.lua URL -- PATH BODY_KIND EXPECT AGENTS [opa]
-- BODY_KIND is "approval" (a $25 batch-generate: require_approval) or "allow" (a $0.001
-- research call: allow, with a reservation on agentcost). With "opa" the request is wrapped in
-- {"input": ...} as OPA's data API wants.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  path, kind, expect, agents, opa = args[1], args[2], args[3], tonumber(args[4]), args[5] == "opa"
  ok, bad, n = 0, 0, tid * 7919
  needle = '"decision":"' .. expect .. '"'
  if kind == "approval" then
    action, estimate = "job.reports.batch-generate", "25"
  else
    action, estimate = "job.research.competitors", "0.001"
  end
  headers = {["Content-Type"] = "application/json"}
end

function request()
  n = n + 1
  local body = '{"agent_id":"bench-agent-' .. (n % agents) .. '","action":"' .. action ..
    '","estimated_cost_usd":' .. estimate .. '}'
  if opa then body = '{"input":' .. body .. '}' end
  return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, body)
  if status >= 200 and status < 300 and string.find(body, needle, 1, true) then
    ok = ok + 1
  else
    bad = bad + 1
    if bad == 1 then first = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local o, b, f = 0, 0, nil
  for _, t in ipairs(threads) do
    o, b = o + t:get("ok"), b + t:get("bad")
    f = f or t:get("first")
  end
  io.write(string.format("RESULT ok=%d bad=%d seconds=%.3f p50_ms=%.2f p99_ms=%.2f\n", o, b,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  if f then io.write("FIRST_BAD " .. f .. "\n") end
end
