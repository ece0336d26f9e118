-- Reads one record as stored, expired or not, for operators: with the server's time and the key's TTL.
-- KEYS[1] record key
-- Returns {now, 'absent'} | {now, 'record', record, pttl} | {now, 'corrupt', reason}

-- @include record

local now = now_ms()
local rec, problem = read_record(KEYS[1], now)
if problem then return {fmt(now), 'corrupt', problem} end
if rec == nil then return {fmt(now), 'absent'} end
return {fmt(now), 'record', reply(rec), redis.call('PTTL', KEYS[1])}
