-- Extends a claim's lease if ARGV[1] still holds it.
-- KEYS[1] record key   ARGV[1] owner  ARGV[2] owner as JSON  ARGV[3] lease ms  ARGV[4] abandoned-claim keep ms
-- Returns 1 when renewed, 0 when the claim is not this owner's (any more).

-- @include record

local key = KEYS[1]
local now = now_ms()
local rec = read_record(key, now)
if not held_by(rec, ARGV[1], ARGV[2]) then return 0 end
local lease_ms, keep_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
if rec.v == '2' then
  -- The lease is the key's TTL; the creation time, derived from it until now, is written out.
  redis.call('SET', key, claim_value(rec.fe, lease_ms, keep_ms, rec.ca, rec.tail), 'PX', lease_ms + keep_ms)
  return 1
end
redis.call('HSET', key, 'le', fmt(now + lease_ms))
redis.call('PEXPIRE', key, lease_ms + keep_ms)
return 1
