-- Completes a claim, fenced: only the owner that holds it in progress may complete it.
-- KEYS[1] record key   ARGV[1] owner  ARGV[2] retention ms  ARGV[3] expiry grace ms
-- ARGV[4] '1' when a result follows  ARGV[5] result JSON
-- Returns 1 when completed, 0 (and no write) otherwise.

-- @include record

local key = KEYS[1]
local rec = read_record(key)
-- Already completed by this very claim: the client re-sent the command after a reconnect.
if rec ~= nil and rec.st == 'c' and rec.ow == ARGV[1] then return 1 end
if not held_by(rec, ARGV[1]) then return 0 end
local now = now_ms()
local ttl_ms = tonumber(ARGV[2])
if ARGV[4] == '1' then
  redis.call('HDEL', key, 'le')
  redis.call('HSET', key, 'st', 'c', 'co', fmt(now), 'ex', fmt(now + ttl_ms), 'rs', ARGV[5])
else
  redis.call('HDEL', key, 'le', 'rs')
  redis.call('HSET', key, 'st', 'c', 'co', fmt(now), 'ex', fmt(now + ttl_ms))
end
-- Reads honour `ex` exactly; the key itself goes a little later, which leaves purgeExpired something to
-- find and never lets a read see a record past its retention.
redis.call('PEXPIRE', key, ttl_ms + tonumber(ARGV[3]))
return 1
