-- Shared by the store scripts (inlined where a script says `-- @include record`). A record is one of:
--
-- Format 2, a string (written since 0.2; a first claim is a plain SET … NX PX from the client):
--   imq2|i|<fence>|<lease ms>|<keep ms>|<created ms, 0 = derive>|<tail>    a claim in progress
--   imq2|c|<fence>|<created ms>|<completed ms>|<retention expiry ms>|<tail>  a completed record
--   tail = a JSON array [owner, fingerprint or null, scope, key (for people)] (+ result, when completed)
--   A claim's lease is in its key's TTL: the key lives lease + keep ms, so the lease expires when
--   PTTL <= keep, and a claim written by the client (created 0) was created lease ms before that.
--   Lua never decodes the tail: owners are compared on their JSON text, sent by the client.
--
-- Format 1, a hash (written before 0.2; still read, completed, renewed, released and taken over):
--   v  format version ('1')     st  'i' in progress | 'c' completed   ow  owner   fe  fence
--   le lease expiry (ms)        ca  created (ms)    co  completed (ms)  ex  retention expiry (ms)
--   fp fingerprint (optional)   rs  result JSON (optional)   sc, k  scope and key, for people reading Redis
--
-- Times are milliseconds on this server's clock, read with TIME (or PTTL), so every client compares
-- against one clock.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- tostring() would print large numbers in exponent form.
local function fmt(n)
  return string.format('%.0f', n)
end

local function read_v1(flat)
  local rec = {}
  for i = 1, #flat, 2 do rec[flat[i]] = flat[i + 1] end
  if rec.v ~= '1' then return nil, 'is not an idempotency record of format version 1' end
  rec.fe, rec.ca = tonumber(rec.fe), tonumber(rec.ca)
  if rec.fe == nil or rec.ca == nil or rec.ow == nil then
    return nil, 'is a record without owner, fence or creation time'
  end
  if rec.st == 'i' then
    rec.le = tonumber(rec.le)
    if rec.le == nil then return nil, 'is a claim without a lease' end
  elseif rec.st == 'c' then
    rec.ex, rec.co = tonumber(rec.ex), tonumber(rec.co)
    if rec.ex == nil or rec.co == nil then return nil, 'is a completed record without its times' end
  else
    return nil, 'has an unknown status'
  end
  rec.flat = flat
  return rec
end

local function read_v2(key, value, now)
  -- A position capture, not `(.*)`: the tail is never scanned, only its first and last bytes checked.
  local st, fe, a, b, c, at = string.match(value, '^imq2|([ic])|(%d+)|(%d+)|(%d+)|(%d+)|()')
  if st == nil or string.byte(value, at) ~= 91 or string.byte(value, -1) ~= 93 then -- '[' … ']'
    return nil, 'holds a string that is not an idempotency record'
  end
  local rec = {v = '2', st = st, fe = tonumber(fe), tail = string.sub(value, at)}
  if st == 'i' then
    local pttl = redis.call('PTTL', key)
    if pttl < 0 then return nil, 'is a claim without a lease (its key has no TTL)' end
    rec.lease, rec.keep = tonumber(a), tonumber(b)
    rec.le = now + pttl - rec.keep
    rec.ca = c ~= '0' and tonumber(c) or rec.le - rec.lease
  else
    rec.ca, rec.co, rec.ex = tonumber(a), tonumber(b), tonumber(c)
  end
  return rec
end

-- Returns rec and problem: nil, nil when the key is absent; nil, reason when something under our key is
-- not a record we wrote (it must never count as one). One GET for a format-2 record or an absent key;
-- a hash costs a failed GET and an HGETALL; another type a TYPE as well, to say what it holds.
local function read_record(key, now)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' and value.err then
    local flat = redis.pcall('HGETALL', key)
    if flat.err then
      return nil, 'holds a ' .. redis.call('TYPE', key).ok .. ', not an idempotency record'
    end
    return read_v1(flat)
  end
  if not value then return nil, nil end
  return read_v2(key, value, now)
end

-- What the client decodes: {'1', HGETALL's answer} | {'2', st, fence, lease expiry, created, completed,
-- retention expiry, tail} ('' where a status has no such time).
local function reply(rec)
  if rec.v == '1' then return {'1', rec.flat} end
  if rec.st == 'i' then return {'2', 'i', fmt(rec.fe), fmt(rec.le), fmt(rec.ca), '', '', rec.tail} end
  return {'2', 'c', fmt(rec.fe), '', fmt(rec.ca), fmt(rec.co), fmt(rec.ex), rec.tail}
end

-- Whether `owner` (its JSON text: `owner_json`) wrote this record.
local function owned_by(rec, owner, owner_json)
  if rec.v == '1' then return rec.ow == owner end
  return string.sub(rec.tail, 2, #owner_json + 2) == owner_json .. ','
end

-- A claim that the owner may still renew, complete or release.
local function held_by(rec, owner, owner_json)
  return rec ~= nil and rec.st == 'i' and owned_by(rec, owner, owner_json)
end

-- A format-2 claim of `fence`, created at `created`, for `lease` ms (+ `keep` ms kept after it).
local function claim_value(fence, lease, keep, created, tail)
  return 'imq2|i|' .. fmt(fence) .. '|' .. fmt(lease) .. '|' .. fmt(keep) .. '|' .. fmt(created) .. '|' .. tail
end
