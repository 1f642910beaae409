-- bench/tree.lua: wrk script that grows the resource tree, for bench/tree-scale.sh.
--
-- Usage: wrk -t1 -cN -dD -s bench/tree.lua URL -- KIND ORIGIN COUNT [DONE_FILE]
--   KIND cnt: POSTs an empty <container> to URL as ORIGIN (the server names it).
--   KIND ae:  registers an <AE> at URL (the CSEBase) as a new originator each time:
--             ORIGIN followed by a per-thread counter (use -t1).
-- Once COUNT responses have arrived, writes DONE_FILE (if given) so the caller can end
-- wrk (thread:stop() does not end the run). done() prints "TREE responses=N errors=N".

local kind, origin, limit, marker = "cnt", "Cscale", 1000000000, nil
local n, seen = 0, 0
errors = 0
local cnt_body = '{"m2m:cnt":{}}'

function init(args)
   kind = args[1] or kind
   origin = args[2] or origin
   limit = tonumber(args[3] or limit)
   marker = args[4]
end

function request()
   n = n + 1
   if kind == "ae" then
      local name = origin .. tostring(n)
      return wrk.format("POST", nil, {
         ["X-M2M-Origin"] = name,
         ["X-M2M-RI"] = "t" .. tostring(n),
         ["X-M2M-RVI"] = "3",
         ["Content-Type"] = "application/json;ty=2",
      }, '{"m2m:ae":{"rn":"' .. name .. '","api":"Nscale","rr":false,"srv":["3"]}}')
   end
   return wrk.format("POST", nil, {
      ["X-M2M-Origin"] = origin,
      ["X-M2M-RI"] = "t" .. tostring(n),
      ["X-M2M-RVI"] = "3",
      ["Content-Type"] = "application/json;ty=3",
   }, cnt_body)
end

function response(status, headers, body)
   seen = seen + 1
   if status ~= 201 then errors = errors + 1 end
   if seen == limit and marker then
      local f = io.open(marker, "w")
      if f then f:write("done\n"); f:close() end
   end
end

function done(summary, latency, requests)
   print(string.format("TREE responses=%d errors=%d", summary.requests, summary.errors.status))
end
