-- Claims a token when the client's SET … NX found its key taken (or on a first claim, if the client
-- sends no SET): take over an expired claim (fence + 1), reclaim a completed record past its retention,
-- recognise our own claim sent again, or return the record that stands. Reads both record formats and
-- writes format 2.
-- KEYS[1] record key
-- ARGV[1] owner  ARGV[2] owner as JSON  ARGV[3] lease ms  ARGV[4] how long an abandoned claim is kept
-- after its lease, ms  ARGV[5] the claim's tail (JSON [owner, fingerprint, scope, key])
-- Returns {'claimed', takeover '0'|'1', record, now} | {'exists', '0', record, now} | {'corrupt', reason}

-- @include record

local key = KEYS[1]
local owner, owner_json = ARGV[1], ARGV[2]
local lease_ms, keep_ms, tail = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local now = now_ms()

-- The key outlives the lease by keep_ms so that a late copy takes the claim over (fence + 1) rather
-- than claiming afresh; Redis drops an abandoned claim by itself afterwards. SET replaces a format-1
-- hash as well.
local function claim(fence)
  redis.call('SET', key, claim_value(fence, lease_ms, keep_ms, now, tail), 'PX', lease_ms + keep_ms)
  return {'2', 'i', fmt(fence), fmt(now + lease_ms), fmt(now), '', '', tail}
end

local rec, problem = read_record(key, now)
if problem then return {'corrupt', problem} end
local at = fmt(now)
if rec == nil then return {'claimed', '0', claim(1), at} end
-- Owners are unique per claim, so this is our own claim sent again by the client after a reconnect
-- (the first answer was lost): it is still ours.
if held_by(rec, owner, owner_json) then return {'claimed', '0', reply(rec), at} end
if rec.st == 'i' and rec.le <= now then return {'claimed', '1', claim(rec.fe + 1), at} end
if rec.st == 'c' and rec.ex <= now then return {'claimed', '0', claim(1), at} end
return {'exists', '0', reply(rec), at}
