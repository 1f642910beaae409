-- bench/fill.lua: wrk script that creates contentInstances until a count is reached.
--
-- Usage: wrk -t1 -c32 -d600s -s bench/fill.lua URL -- ORIGIN COUNT [CON_BYTES]
-- POSTs {"m2m:cin":{"con":"<CON_BYTES x>"}} to URL as ORIGIN; stops the thread once COUNT
-- responses have arrived (a few requests already in flight may still land). done() prints
-- "FILL responses=N errors=N".

local origin, limit, body = "Cbench", 1000000, nil
local n, seen = 0, 0
errors = 0

function init(args)
   origin = args[1] or origin
   limit = tonumber(args[2] or limit)
   body = '{"m2m:cin":{"con":"' .. string.rep("x", tonumber(args[3] or "100")) .. '"}}'
end

function request()
   n = n + 1
   return wrk.format("POST", nil, {
      ["X-M2M-Origin"] = origin,
      ["X-M2M-RI"] = "f" .. tostring(n),
      ["X-M2M-RVI"] = "3",
      ["Content-Type"] = "application/json;ty=4",
   }, body)
end

function response(status, headers, resp_body)
   seen = seen + 1
   if status ~= 201 then errors = errors + 1 end
   if seen >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
   print(string.format("FILL responses=%d errors=%d", summary.requests, summary.errors.status))
end
