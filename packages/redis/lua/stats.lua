-- Counts records for operators, one page of keys at a time (on a cluster: keys of one slot). Keys gone
-- since the SCAN that found them are skipped.
-- KEYS record keys   ARGV[1] the "expiring soon" window, ms
-- Returns {now, in progress, completed, lapsed claims, expired, expiring soon, unreadable,
--          oldest key, its record, oldest in-progress key, its record} ('' and {} when none)

-- @include record

local now = now_ms()
local soon_until = now + tonumber(ARGV[1])
local in_progress, completed, lapsed, expired, soon, unreadable = 0, 0, 0, 0, 0, 0
local oldest, oldest_ca, oldest_rec = '', nil, nil
local oldest_ip, oldest_ip_ca, oldest_ip_rec = '', nil, nil
for _, key in ipairs(KEYS) do
  local rec, problem = read_record(key, now)
  if problem then
    unreadable = unreadable + 1
  elseif rec ~= nil then
    local ca = rec.ca
    if oldest_ca == nil or ca < oldest_ca then oldest, oldest_ca, oldest_rec = key, ca, rec end
    if rec.st == 'i' then
      in_progress = in_progress + 1
      if rec.le <= now then lapsed = lapsed + 1 end
      if oldest_ip_ca == nil or ca < oldest_ip_ca then oldest_ip, oldest_ip_ca, oldest_ip_rec = key, ca, rec end
    else
      completed = completed + 1
      if rec.ex <= now then
        expired = expired + 1
      elseif rec.ex <= soon_until then
        soon = soon + 1
      end
    end
  end
end
return {fmt(now), in_progress, completed, lapsed, expired, soon, unreadable, oldest,
  oldest_rec and reply(oldest_rec) or {}, oldest_ip, oldest_ip_rec and reply(oldest_ip_rec) or {}}
