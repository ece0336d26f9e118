-- Extends a claim's lease if ARGV[1] still holds it.
-- KEYS[1] record key   ARGV[1] owner  ARGV[2] lease ms  ARGV[3] abandoned-claim keep ms
-- Returns 1 when renewed, 0 when the claim is not this owner's (any more).

-- @include record

local key = KEYS[1]
local rec = read_record(key)
if not held_by(rec, ARGV[1]) then return 0 end
local lease_ms = tonumber(ARGV[2])
redis.call('HSET', key, 'le', fmt(now_ms() + lease_ms))
redis.call('PEXPIRE', key, lease_ms + tonumber(ARGV[3]))
return 1
