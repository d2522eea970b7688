-- KEYS (the teams' keys) and ADMIN are prepended by bench/__main__.py.
-- `python -m bench`: reserve, and settle each reservation once: ids wait in this thread's queue until a
-- connection of the thread is free to settle one (wrk keeps one Lua state per thread).
local queue, head, tail = {}, 1, 0
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. ADMIN}
request = function()
  if head <= tail then
    local rid = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", "/admin/reservations/" .. rid .. "/settle", headers, '{"credits": 3, "final": true}')
  end
  local key = KEYS[math.random(#KEYS)]
  return wrk.format("POST", "/admin/reservations", headers, '{"key": "' .. key .. '", "credits": 5}')
end
response = function(status, headers, body)
  local rid = string.match(body, '"id":"([^"]+)","teamId"')
  if status == 201 and rid then
    tail = tail + 1
    queue[tail] = rid
  end
end
