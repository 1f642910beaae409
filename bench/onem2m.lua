-- bench/onem2m.lua: wrk script for the oneM2M load workloads of bench/load.sh.
--
-- Usage (the URL's path is the request target):
--   wrk -t1 -c32 -d10s --latency -s bench/onem2m.lua URL -- ORIGIN KIND [CON_BYTES]
--     ORIGIN     X-M2M-Origin of every request (e.g. Creader, CAdmin)
--     KIND       get  -> GET URL                                     (W1, W3)
--                cin  -> POST URL, Content-Type application/json;ty=4,
--                        body {"m2m:cin":{"con":"<CON_BYTES x>"}}     (W2)
--                getcbor -> as get, with Accept: application/cbor      (W1 in CBOR)
--                cincbor -> as cin, the same content in CBOR,
--                        Content-Type application/cbor;ty=4           (W2 in CBOR)
--                bat  -> POST URL, Content-Type application/json;ty=13,
--                        body {"m2m:bat":{"mgd":1006,"btl":50,"bts":1}} (a battery
--                        <mgmtObj>; bench/node.sh)
--                tsi  -> POST URL, Content-Type application/json;ty=30, body
--                        {"m2m:tsi":{"dgt":"<T>","con":"21.5"}} with T one millisecond
--                        later on every request, from a year ahead (bench/time-series.sh)
--     CON_BYTES  size of the cin's con for KIND=cin (default 100)
--
-- Every request carries X-M2M-Origin, a unique X-M2M-RI ("b<thread>-<n>"), X-M2M-RVI: 3
-- and Accept: application/json (application/cbor for the *cbor kinds). A response counts as an error when its HTTP status is
-- not 2xx or its X-M2M-RSC (if present) is not 2xxx. done() prints one machine-readable
-- line that bench/load.sh parses:
--   BENCH requests=N duration_us=N rps=F p50_us=N p99_us=N errors=N non2xx=N
--         sock_connect=N sock_read=N sock_write=N sock_timeout=N first_error=S
-- errors = non2xx + all socket errors; first_error (the rest of the line, may contain
-- spaces) is the first failing response: "STATUS rsc=RSC BODY[:160]", or "-"; its whole
-- body (up to 4000 bytes) is printed before, on a line "BENCH_FIRST_ERROR_BODY ...".

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

-- Per-thread state (globals so that done() can read them via thread:get).
non2xx = 0
first_error = "-"
first_error_body = ""
local origin = "CAdmin"
local kind = "get"
local body = nil
local n = 0
local accept = "application/json"
local content_type = "application/json;ty=4"

-- CBOR head of a major type with a length (RFC 8949 3.1), for lengths below 65536.
local function cbor_head(major, len)
   local m = major * 32
   if len < 24 then return string.char(m + len) end
   if len < 256 then return string.char(m + 24, len) end
   return string.char(m + 25, math.floor(len / 256), len % 256)
end

local function cbor_text(s)
   return cbor_head(3, #s) .. s
end

function init(args)
   origin = args[1] or origin
   kind = args[2] or kind
   local con_bytes = tonumber(args[3] or "100")
   if kind == "cin" then
      body = '{"m2m:cin":{"con":"' .. string.rep("x", con_bytes) .. '"}}'
   elseif kind == "cincbor" then
      -- {"m2m:cin": {"con": "xxx…"}} as two one-entry CBOR maps
      body = cbor_head(5, 1) .. cbor_text("m2m:cin") .. cbor_head(5, 1) .. cbor_text("con")
         .. cbor_text(string.rep("x", con_bytes))
      content_type = "application/cbor;ty=4"
      accept = "application/cbor"
   elseif kind == "getcbor" then
      accept = "application/cbor"
   elseif kind == "bat" then
      body = '{"m2m:bat":{"mgd":1006,"btl":50,"bts":1}}'
      content_type = "application/json;ty=13"
   elseif kind == "tsi" then
      content_type = "application/json;ty=30"
   elseif kind ~= "get" then
      error("onem2m.lua: KIND must be get, cin, getcbor, cincbor, bat or tsi, got " .. tostring(kind))
   end
end

-- A data point's generation time: a year ahead (so detection never waits on these
-- points), then one millisecond per request, apart by thread.
local tsi_base = os.time() + 365 * 86400
local function tsi_body()
   local ms = (tid or 1) * 100000000 + n
   local stamp = os.date("!%Y%m%dT%H%M%S", tsi_base + math.floor(ms / 1000)) .. string.format(",%03d", ms % 1000)
   return '{"m2m:tsi":{"dgt":"' .. stamp .. '","con":"21.5"}}'
end

function request()
   n = n + 1
   local h = {
      ["X-M2M-Origin"] = origin,
      ["X-M2M-RI"] = "b" .. tostring(tid) .. "-" .. tostring(n),
      ["X-M2M-RVI"] = "3",
      ["Accept"] = accept,
   }
   if kind == "tsi" then
      h["Content-Type"] = content_type
      return wrk.format("POST", nil, h, tsi_body())
   end
   if body ~= nil then
      h["Content-Type"] = content_type
      return wrk.format("POST", nil, h, body)
   end
   return wrk.format("GET", nil, h)
end

function response(status, headers, resp_body)
   local rsc = headers["X-M2M-RSC"] or headers["x-m2m-rsc"] or headers["X-M2M-Rsc"]
   if status < 200 or status > 299 or (rsc ~= nil and string.sub(rsc, 1, 1) ~= "2") then
      non2xx = non2xx + 1
      if first_error == "-" then
         local snippet = string.gsub(string.sub(resp_body or "", 1, 160), "[\r\n]", " ")
         first_error = tostring(status) .. " rsc=" .. tostring(rsc) .. " " .. snippet
         first_error_body = string.sub(resp_body or "", 1, 4000)
      end
   end
end

function done(summary, latency, requests)
   local bad, first, first_body = 0, "-", ""
   for _, t in ipairs(threads) do
      bad = bad + (t:get("non2xx") or 0)
      local f = t:get("first_error")
      if first == "-" and f ~= nil and f ~= "-" then
         first, first_body = f, t:get("first_error_body") or ""
      end
   end
   if first ~= "-" then
      -- the whole body of the first failing response (up to 4000 bytes), for diagnosis
      io.write("BENCH_FIRST_ERROR_BODY " .. first_body .. "\n")
   end
   local e = summary.errors
   local sock = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_us=%d rps=%.2f p50_us=%d p99_us=%d errors=%d non2xx=%d " ..
      "sock_connect=%d sock_read=%d sock_write=%d sock_timeout=%d first_error=%s\n",
      summary.requests, summary.duration, summary.requests / secs,
      latency:percentile(50), latency:percentile(99), bad + sock, bad,
      e.connect, e.read, e.write, e.timeout, first))
end
