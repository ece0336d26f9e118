-- Deletes a claim if ARGV[1] still holds it in progress; a completed record is never released.
-- KEYS[1] record key   ARGV[1] owner
-- Returns 1 when released, 0 otherwise.

-- @include record

local rec = read_record(KEYS[1])
if not held_by(rec, ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
