-- Completes a claim, fenced: only the owner that holds it in progress may complete it. A format-1 claim
-- is completed in format 1, a format-2 one in format 2.
-- KEYS[1] record key   ARGV[1] owner  ARGV[2] owner as JSON  ARGV[3] retention ms  ARGV[4] expiry grace ms
-- ARGV[5] '1' when a result follows  ARGV[6] result JSON
-- Returns {1 when completed | 0 (and no write) otherwise, the server's time}: the client keeps the time
-- to bound this node's clock (see server-clock.ts).

-- @include record

local key = KEYS[1]
local owner, owner_json = ARGV[1], ARGV[2]
local now = now_ms()
local rec = read_record(key, now)
-- Already completed by this very claim: the client re-sent the command after a reconnect.
if rec ~= nil and rec.st == 'c' and owned_by(rec, owner, owner_json) then return {1, fmt(now)} end
if not held_by(rec, owner, owner_json) then return {0, fmt(now)} end
local ttl_ms = tonumber(ARGV[3])
-- Reads honour the retention expiry exactly; the key itself goes a little later, which leaves
-- purgeExpired something to find and never lets a read see a record past its retention.
local key_ttl = ttl_ms + tonumber(ARGV[4])
if rec.v == '2' then
  local tail = rec.tail
  if ARGV[5] == '1' then tail = string.sub(tail, 1, -2) .. ',' .. cjson.encode(ARGV[6]) .. ']' end
  local value = 'imq2|c|' .. fmt(rec.fe) .. '|' .. fmt(rec.ca) .. '|' .. fmt(now) .. '|' .. fmt(now + ttl_ms) .. '|' .. tail
  redis.call('SET', key, value, 'PX', key_ttl)
  return {1, fmt(now)}
end
if ARGV[5] == '1' then
  redis.call('HDEL', key, 'le')
  redis.call('HSET', key, 'st', 'c', 'co', fmt(now), 'ex', fmt(now + ttl_ms), 'rs', ARGV[6])
else
  redis.call('HDEL', key, 'le', 'rs')
  redis.call('HSET', key, 'st', 'c', 'co', fmt(now), 'ex', fmt(now + ttl_ms))
end
redis.call('PEXPIRE', key, key_ttl)
return {1, fmt(now)}
