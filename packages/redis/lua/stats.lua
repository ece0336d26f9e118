-- Counts records for operators, one page of keys at a time (on a cluster: keys of one slot). Keys gone
-- since the SCAN that found them are skipped.
-- KEYS record keys   ARGV[1] the "expiring soon" window, ms
-- Returns {now, in progress, completed, lapsed claims, expired, expiring soon, unreadable,
--          oldest key, its fields, oldest in-progress key, its fields} ('' and {} when none)

-- @include record

local now = now_ms()
local soon_until = now + tonumber(ARGV[1])
local in_progress, completed, lapsed, expired, soon, unreadable = 0, 0, 0, 0, 0, 0
local oldest, oldest_ca, oldest_flat = '', nil, {}
local oldest_ip, oldest_ip_ca, oldest_ip_flat = '', nil, {}
for _, key in ipairs(KEYS) do
  local rec, flat, problem = read_record(key)
  if problem then
    unreadable = unreadable + 1
  elseif rec ~= nil then
    local ca = tonumber(rec.ca)
    if oldest_ca == nil or ca < oldest_ca then oldest, oldest_ca, oldest_flat = key, ca, flat end
    if rec.st == 'i' then
      in_progress = in_progress + 1
      if tonumber(rec.le) <= now then lapsed = lapsed + 1 end
      if oldest_ip_ca == nil or ca < oldest_ip_ca then oldest_ip, oldest_ip_ca, oldest_ip_flat = key, ca, flat end
    else
      completed = completed + 1
      local ex = tonumber(rec.ex)
      if ex <= now then
        expired = expired + 1
      elseif ex <= soon_until then
        soon = soon + 1
      end
    end
  end
end
return {fmt(now), in_progress, completed, lapsed, expired, soon, unreadable, oldest, oldest_flat, oldest_ip,
  oldest_ip_flat}
