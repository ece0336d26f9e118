-- Reads many records in one round trip (on a cluster: keys of one slot).
-- KEYS record keys
-- Returns, per key: {} when absent or past retention, {'record', fields}, or {'corrupt', reason}.

-- @include record

local now = now_ms()
local out = {}
for i, key in ipairs(KEYS) do
  local rec, flat, problem = read_record(key)
  if problem then
    out[i] = {'corrupt', problem}
  elseif rec == nil or (rec.st == 'c' and tonumber(rec.ex) <= now) then
    out[i] = {}
  else
    out[i] = {'record', flat}
  end
end
return out
