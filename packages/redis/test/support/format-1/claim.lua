-- Claims a token in one round trip: insert if absent, take over an expired claim (fence + 1), reclaim a
-- completed record past its retention, or return the record that stands.
-- KEYS[1] record key
-- ARGV[1] owner  ARGV[2] lease ms  ARGV[3] how long an abandoned claim is kept after its lease, ms
-- ARGV[4] '1' when a fingerprint follows  ARGV[5] fingerprint  ARGV[6] scope  ARGV[7] key (for people)
-- Returns {'claimed', takeover '0'|'1', fields} | {'exists', '0', fields} | {'corrupt', reason}

-- @include record

local key = KEYS[1]
local owner, lease_ms, stale_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()

-- `replace`: a record stands (expired) and its fields go first; a fresh key has none.
local function claim(fence, replace)
  local fields = {
    'v', '1', 'st', 'i', 'ow', owner, 'fe', fmt(fence), 'le', fmt(now + lease_ms), 'ca', fmt(now),
    'sc', ARGV[6], 'k', ARGV[7],
  }
  if ARGV[4] == '1' then
    fields[#fields + 1] = 'fp'
    fields[#fields + 1] = ARGV[5]
  end
  if replace then redis.call('DEL', key) end
  redis.call('HSET', key, unpack(fields))
  -- The key outlives the lease so that a late copy takes the claim over (fence + 1) rather than
  -- claiming afresh; Redis drops an abandoned claim by itself afterwards.
  redis.call('PEXPIRE', key, lease_ms + stale_ms)
  return fields
end

local rec, flat, problem = read_record(key)
if problem then return {'corrupt', problem} end
if rec == nil then return {'claimed', '0', claim(1, false)} end
-- Owners are unique per claim, so this is our own claim sent again by the client after a reconnect
-- (the first answer was lost): it is still ours.
if rec.st == 'i' and rec.ow == owner then return {'claimed', '0', flat} end
if rec.st == 'i' and tonumber(rec.le) <= now then
  return {'claimed', '1', claim(tonumber(rec.fe) + 1, true)}
end
if rec.st == 'c' and tonumber(rec.ex) <= now then
  return {'claimed', '0', claim(1, true)}
end
return {'exists', '0', flat}
