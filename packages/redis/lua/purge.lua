-- Deletes a record if it is one of ours, completed, and past its retention. Anything else under the key,
-- ours or not, is left alone.
-- KEYS[1] record key
-- Returns 1 when deleted, 0 otherwise.

-- @include record

local now = now_ms()
local rec = read_record(KEYS[1], now)
if rec == nil or rec.st ~= 'c' or rec.ex > now then return 0 end
redis.call('DEL', KEYS[1])
return 1
