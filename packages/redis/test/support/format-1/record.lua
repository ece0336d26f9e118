-- Shared by the store scripts (inlined where a script says `-- @include record`). A record is a hash:
--   v  format version ('1')     st  'i' in progress | 'c' completed   ow  owner   fe  fence
--   le lease expiry (ms)        ca  created (ms)    co  completed (ms)  ex  retention expiry (ms)
--   fp fingerprint (optional)   rs  result JSON (optional)   sc, k  scope and key, for people reading Redis
-- Times are milliseconds on this server's clock, read with TIME, so every client compares against one clock.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- tostring() would print large numbers in exponent form.
local function fmt(n)
  return string.format('%.0f', n)
end

-- Returns rec (a field map), flat (HGETALL's answer) and problem: nil, nil, nil when the key is absent;
-- nil, nil, reason when something under our key is not a record we wrote (it must never count as one).
-- One HGETALL in the common case: an absent key answers an empty list; only a key of another type
-- (WRONGTYPE) costs a TYPE, to say what it holds.
local function read_record(key)
  local flat = redis.pcall('HGETALL', key)
  if flat.err then
    return nil, nil, 'holds a ' .. redis.call('TYPE', key).ok .. ', not an idempotency record'
  end
  if #flat == 0 then return nil, nil, nil end
  local rec = {}
  for i = 1, #flat, 2 do rec[flat[i]] = flat[i + 1] end
  if rec.v ~= '1' then return nil, nil, 'is not an idempotency record of format version 1' end
  if tonumber(rec.fe) == nil or tonumber(rec.ca) == nil or rec.ow == nil then
    return nil, nil, 'is a record without owner, fence or creation time'
  end
  if rec.st == 'i' then
    if tonumber(rec.le) == nil then return nil, nil, 'is a claim without a lease' end
  elseif rec.st == 'c' then
    if tonumber(rec.ex) == nil or tonumber(rec.co) == nil then
      return nil, nil, 'is a completed record without its times'
    end
  else
    return nil, nil, 'has an unknown status'
  end
  return rec, flat, nil
end

-- A claim that the owner may still renew, complete or release.
local function held_by(rec, owner)
  return rec ~= nil and rec.st == 'i' and rec.ow == owner
end
