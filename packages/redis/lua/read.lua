-- Reads many records in one round trip (on a cluster: keys of one slot).
-- KEYS record keys
-- Returns, per key: {} when absent or past retention, {'record', record}, or {'corrupt', reason}.

-- @include record

local now = now_ms()
local out = {}
for i, key in ipairs(KEYS) do
  local rec, problem = read_record(key, now)
  if problem then
    out[i] = {'corrupt', problem}
  elseif rec == nil or (rec.st == 'c' and rec.ex <= now) then
    out[i] = {}
  else
    out[i] = {'record', reply(rec)}
  end
end
return out
