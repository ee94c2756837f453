package ledger

import "github.com/redis/go-redis/v9"

// Every script touches only the keys it is given. Money travels as decimal strings and is added and
// compared in two base-1e9 limbs, so sums stay exact beyond the 2^53 of Lua's numbers; counters are
// changed with HINCRBY or written back as exact strings.
const luaMoney = `
local B = 1000000000
local function N(s)
  if not s or s == '' or string.sub(s, 1, 1) == '-' then return {0, 0} end
  local n = #s
  if n <= 9 then return {0, tonumber(s)} end
  return {tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))}
end
local function add(a, b)
  local hi, lo = a[1] + b[1], a[2] + b[2]
  if lo >= B then hi, lo = hi + 1, lo - B end
  return {hi, lo}
end
local function sub0(a, b)
  local hi, lo = a[1] - b[1], a[2] - b[2]
  if lo < 0 then hi, lo = hi - 1, lo + B end
  if hi < 0 then return {0, 0} end
  return {hi, lo}
end
local function cmp(a, b)
  if a[1] ~= b[1] then if a[1] < b[1] then return -1 end return 1 end
  if a[2] ~= b[2] then if a[2] < b[2] then return -1 end return 1 end
  return 0
end
local function S(a)
  if a[1] == 0 then return string.format('%d', a[2]) end
  return string.format('%d%09d', a[1], a[2])
end
local function release(key, amount)
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'r', S(sub0(N(redis.call('HGET', key, 'r')), amount)))
  end
end
local function spend(c, amount)
  redis.call('HINCRBY', KEYS[c.k], 's', amount)
  redis.call('PEXPIRE', KEYS[c.k], c.ttl)
  if c.x > 0 then
    redis.call('SADD', KEYS[c.x], c.m)
    redis.call('PEXPIRE', KEYS[c.x], c.ttl)
  end
end
`

// bookScript books a batch. ARGV[1] is a bookPlan.
var bookScript = redis.NewScript(luaMoney + `
local p = cjson.decode(ARGV[1])
for _, t in ipairs(p.tr) do
  local id = redis.call('HGET', KEYS[t.k], 'id') or ''
  if id ~= t.id then return {'retry'} end
end
local sums, rel, res, anom = {}, {}, {}, {}
local booked, dup, matched = 0, 0, 0
local mask = {}
local function load(j)
  if res[j] == nil then
    local f = redis.call('HMGET', KEYS[p.rs[j].k], 'state', 'rem', 'matched', 'spans', 'maxout')
    if f[1] ~= 'open' then
      res[j] = false
    else
      res[j] = {rem = N(f[2]), matched = N(f[3]), spans = tonumber(f[4] or '0'),
        maxout = tonumber(f[5] or '0'), tok = {0, 0, 0, 0, 0}, anom = 0}
    end
  end
  return res[j]
end
local function samecall(s)
  if s.f == '' then return false end
  local same = false
  if s.pc > 0 and redis.call('GET', KEYS[s.pc]) == s.f then same = true end
  if not same and redis.call('SISMEMBER', KEYS[s.cc], s.f) == 1 then same = true end
  redis.call('SET', KEYS[s.cs], s.f, 'PX', p.it)
  if s.pcc > 0 then
    redis.call('SADD', KEYS[s.pcc], s.f)
    redis.call('PEXPIRE', KEYS[s.pcc], p.it)
  end
  return same
end
local tot, counted = {}, false
local function total(ds)
  if ds == nil or ds == cjson.null then return end
  counted = true
  for _, d in ipairs(ds) do
    local f = p.tf[d.f]
    tot[f] = add(tot[f] or {0, 0}, N(d.n))
  end
end
for _, s in ipairs(p.sp) do
  if s.u then
    mask[#mask + 1] = 'u'
    if s.i == 0 or redis.call('SET', KEYS[s.i], '1', 'NX', 'PX', p.it) then total(s.nw) end
  elseif not redis.call('SET', KEYS[s.i], '1', 'NX', 'PX', p.it) then
    dup = dup + 1
    mask[#mask + 1] = '0'
    total({{f = 1, n = '1'}})
  elseif samecall(s) then
    mask[#mask + 1] = 's'
    total(s.sm)
  else
    booked = booked + 1
    mask[#mask + 1] = '1'
    total(s.nw)
    local c = N(s.c)
    for _, j in ipairs(s.k) do sums[j] = add(sums[j] or {0, 0}, c) end
    if s.a > 0 and (anom[s.a] == nil or tonumber(s.at) > tonumber(anom[s.a])) then anom[s.a] = s.at end
    local r, j = false, 0
    if s.d > 0 then r, j = load(s.d), s.d end
    if not r and s.t > 0 then r, j = load(s.t), s.t end
    if r then
      matched = matched + 1
      local take = c
      if cmp(c, r.rem) > 0 then take = r.rem end
      r.rem = sub0(r.rem, take)
      r.matched = add(r.matched, c)
      r.spans = r.spans + 1
      if s.o > r.maxout then r.maxout = s.o end
      for x = 1, 5 do r.tok[x] = r.tok[x] + s.tk[x] end
      if s.an then r.anom = r.anom + 1 end
      for _, ki in ipairs(p.rs[j].c) do rel[ki] = add(rel[ki] or {0, 0}, take) end
    end
  end
end
for j, v in pairs(sums) do spend(p.ct[j], S(v)) end
for ki, v in pairs(rel) do release(KEYS[ki], v) end
for j, r in pairs(res) do
  if r then
    local k = KEYS[p.rs[j].k]
    redis.call('HSET', k, 'rem', S(r.rem), 'matched', S(r.matched), 'spans', string.format('%d', r.spans),
      'maxout', string.format('%d', r.maxout))
    local names = {'tin', 'tout', 'tcr', 'tcw', 'trs'}
    for x = 1, 5 do
      if r.tok[x] > 0 then redis.call('HINCRBY', k, names[x], string.format('%d', r.tok[x])) end
    end
    if r.anom > 0 then redis.call('HINCRBY', k, 'anom', string.format('%d', r.anom)) end
  end
end
for ki, t in pairs(anom) do
  local cur = redis.call('GET', KEYS[ki])
  if not cur or tonumber(t) > tonumber(cur) then redis.call('SET', KEYS[ki], t, 'PX', p.at) end
end
for f, v in pairs(tot) do
  local r = redis.pcall('HINCRBY', KEYS[p.tk], f, S(v))
  if type(r) == 'table' and r.err then redis.call('HSET', KEYS[p.tk], f, '9223372036854775807') end
end
if counted then redis.call('HSETNX', KEYS[p.tk], 'since', p.now) end
return {booked, dup, matched, table.concat(mask)}
`)

// reserveScript checks and reserves. KEYS[1] reservation, KEYS[2] trace index, KEYS[3] expiry
// set; ARGV[1] is a reservePlan.
var reserveScript = redis.NewScript(luaMoney + `
local p = cjson.decode(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local est = N(p.est)
local vals = {}
for i, c in ipairs(p.ch) do
  local f = redis.call('HMGET', KEYS[c.k], 's', 'r')
  local s, r = N(f[1]), N(f[2])
  vals[i] = {s, r}
  if c.lim ~= '' and cmp(add(add(s, r), est), N(c.lim)) > 0 then
    return {'exhausted', tostring(i), S(s), S(r)}
  end
end
local out = {'ok'}
for i, c in ipairs(p.ch) do
  local r = add(vals[i][2], est)
  redis.call('HSET', KEYS[c.k], 'r', S(r))
  redis.call('PEXPIRE', KEYS[c.k], c.ttl)
  if c.x > 0 then
    redis.call('SADD', KEYS[c.x], c.m)
    redis.call('PEXPIRE', KEYS[c.x], c.ttl)
  end
  out[#out + 1] = S(vals[i][1])
  out[#out + 1] = S(r)
end
redis.call('HSET', KEYS[1], unpack(p.f))
redis.call('PEXPIRE', KEYS[1], p.rttl)
redis.call('ZADD', KEYS[3], p.exp, p.id)
if p.tr then
  redis.call('HSET', KEYS[2], 'id', p.id, 'c', p.keys)
  redis.call('PEXPIRE', KEYS[2], p.rttl)
end
return out
`)

// settleScript releases or expires a reservation. KEYS[1] reservation, KEYS[2] trace index,
// KEYS[3] expiry set; ARGV[1] is a settlePlan.
var settleScript = redis.NewScript(luaMoney + `
local p = cjson.decode(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'state', 'rem', 'spans', 'exp')
if not f[1] then
  redis.call('ZREM', KEYS[3], p.id)
  return {'notfound'}
end
local function all(status)
  local out = {status}
  for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
  return out
end
if f[1] ~= 'open' then return all('settled') end
if p.reason == 'expired' and tonumber(f[4]) > tonumber(p.now) then return {'notdue'} end
local rem = N(f[2])
for _, ki in ipairs(p.rc) do release(KEYS[ki], rem) end
local source = 'none'
if tonumber(f[3] or '0') > 0 then source = 'spans' elseif p.hasrep then source = 'reported' end
if source == 'reported' and p.rep ~= '0' then
  for _, c in ipairs(p.bc) do spend(c, p.rep) end
end
local hasrep = '0'
if p.hasrep then hasrep = '1' end
redis.call('HSET', KEYS[1], 'state', 'settled', 'rem', '0', 'source', source, 'reason', p.reason,
  'reported', p.rep, 'hasrep', hasrep, 'settled', p.at)
redis.call('PEXPIRE', KEYS[1], p.sttl)
redis.call('ZREM', KEYS[3], p.id)
if p.tr and redis.call('HGET', KEYS[2], 'id') == p.id then redis.call('DEL', KEYS[2]) end
return all('ok')
`)

// leaseScript: ARGV now (µs), limit, expiry (µs), lease id.
var leaseScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, first[2]}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local ttl = math.ceil((tonumber(last[2]) - tonumber(ARGV[1])) / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
return {1, ''}
`)

// rateScript is GCRA: ARGV now, interval and period, all in µs.
var rateScript = redis.NewScript(`
local now, iv, per = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nt = tat + iv
if nt - now > per then return {0, string.format('%d', nt - per - now)} end
redis.call('SET', KEYS[1], string.format('%d', nt), 'PX', string.format('%d', math.ceil((nt - now) / 1000) + 1000))
return {1, '0'}
`)

// putScript: ARGV value, ttl (ms).
var putScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return {0, v} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ''}
`)

// approvalCreateScript: KEYS[1] approval, KEYS[2] index, KEYS[3] the agent's pending set (id by
// expiry µs); ARGV expiry (µs), JSON, ttl (ms), created (µs), id, the pending cap (0: none),
// pending set ttl (ms). It returns 0 when the id exists, -1 when the agent is at the cap, else 1.
var approvalCreateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[4])
local cap = tonumber(ARGV[6])
if cap > 0 and redis.call('ZCARD', KEYS[3]) >= cap then return -1 end
redis.call('HSET', KEYS[1], 'state', 'pending', 'exp', ARGV[1], 'json', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[7])
return 1
`)

// approvalCASScript moves an approval from state ARGV[1] to ARGV[2] with JSON ARGV[3]; leaving
// pending removes id ARGV[4] from KEYS[2], its agent's pending set.
var approvalCASScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'notfound', ''} end
if st ~= ARGV[1] then return {'state', st} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'json', ARGV[3])
if st == 'pending' and ARGV[2] ~= 'pending' then redis.call('ZREM', KEYS[2], ARGV[4]) end
return {'ok', ''}
`)

// anomalyScript keeps the latest anomaly time: ARGV time (µs), ttl (ms).
var anomalyScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur or tonumber(ARGV[1]) > tonumber(cur) then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
return 1
`)
