-- Deletes a record for operators, whatever its owner; a live claim only when forced. The decision and the
-- delete are one script, so a claim renewed or taken over meanwhile is never deleted without force.
-- KEYS[1] record key   ARGV[1] '1' to force   ARGV[2] '1' for a dry run (decide, delete nothing)
-- Returns {'absent'} | {'refused', record} | {'forgotten', record} | {'corrupt', reason} (not forced:
-- nothing deleted) | {'unreadable', reason} (forced: what stood under the key was deleted)

-- @include record

local key = KEYS[1]
local force, dry = ARGV[1] == '1', ARGV[2] == '1'
local now = now_ms()
local rec, problem = read_record(key, now)
if problem then
  if not force then return {'corrupt', problem} end
  if not dry then redis.call('DEL', key) end
  return {'unreadable', problem}
end
if rec == nil then return {'absent'} end
if rec.st == 'i' and rec.le > now and not force then return {'refused', reply(rec)} end
if not dry then redis.call('DEL', key) end
return {'forgotten', reply(rec)}
