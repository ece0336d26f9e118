-- Deletes a claim if ARGV[1] still holds it in progress; a completed record is never released.
-- KEYS[1] record key   ARGV[1] owner  ARGV[2] owner as JSON
-- Returns 1 when released, 0 otherwise.

-- @include record

local rec = read_record(KEYS[1], now_ms())
if not held_by(rec, ARGV[1], ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
