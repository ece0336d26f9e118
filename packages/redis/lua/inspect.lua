-- Reads one record as stored, expired or not, for operators: with the server's time and the key's TTL.
-- KEYS[1] record key
-- Returns {now, 'absent'} | {now, 'record', fields, pttl} | {now, 'corrupt', reason}

-- @include record

local now = fmt(now_ms())
local rec, flat, problem = read_record(KEYS[1])
if problem then return {now, 'corrupt', problem} end
if rec == nil then return {now, 'absent'} end
return {now, 'record', flat, redis.call('PTTL', KEYS[1])}
