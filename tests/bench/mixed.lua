-- wrk script for tests/bench/mixed.py: a mix of GET /fast and GET /slow on
-- the same connections, with each request's latency recorded by kind.
--
-- wrk 4.1 gives response() no handle on the request it answers, so the send
-- time travels with the request: request() puts a CLOCK_MONOTONIC
-- microsecond timestamp in the query (?t=...), mixed_app.py echoes it in the
-- body with the kind ({"k": "f", "t": "..."}), and response() takes the
-- difference.  request() runs right where wrk starts its own latency clock
-- (after connecting, before writing), so this is the latency wrk itself
-- would report for that request.
--
-- Configuration (environment, set by mixed.py):
--   MIXED_OUT        file written by done()            (required)
--   MIXED_THREADS    wrk -t value                      (default 1)
--   MIXED_SLOW_RATE  /slow requests per second, whole run, spread evenly
--                    over time and threads; 0 = none  (default 0)
--   MIXED_THINK_MS   mean think time (exponential) before each request on
--                    a connection; 0 = closed loop     (default 0)
-- A "Connection: close" header, if wanted, comes from wrk -H.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } mixed_timespec_t;
int clock_gettime(int clk_id, mixed_timespec_t *tp);
]]
local ts = ffi.new("mixed_timespec_t")
local function now_us()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1000000 + math.floor(tonumber(ts.tv_nsec) / 1000)
end

local nthreads = tonumber(os.getenv("MIXED_THREADS") or "1")
local slow_rate = tonumber(os.getenv("MIXED_SLOW_RATE") or "0")
local think_ms = tonumber(os.getenv("MIXED_THINK_MS") or "0")
local slow_every = slow_rate > 0 and nthreads * 1e6 / slow_rate or nil

-- Latency histograms, microseconds: exact below 1 ms, 3 significant digits
-- above.  Globals, so that done() can fetch them with thread:get().
hist_fast, hist_slow = {}, {}
max_fast, max_slow = 0, 0
n_fast, n_slow = 0, 0            -- responses recorded
sent_fast, sent_slow = 0, 0      -- requests generated
bad_status, unmatched = 0, 0     -- non-200, body without kind/timestamp

local function bucket(us)
   if us < 1000 then return math.floor(us) end
   local e = 10 ^ (math.floor(math.log10(us)) - 2)
   return math.floor(us / e) * e
end

local threads = {}
function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

local next_slow = nil
function init(args)
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
   if slow_every then
      -- each thread starts at a random phase of its own schedule
      next_slow = now_us() + math.random() * slow_every
   end
end

if think_ms > 0 then
   function delay()
      return math.floor(-math.log(1 - math.random()) * think_ms + 0.5)
   end
end

function request()
   local t = now_us()
   if next_slow and t >= next_slow then
      next_slow = next_slow + slow_every
      if next_slow <= t then next_slow = t + slow_every end -- no catch-up bursts
      sent_slow = sent_slow + 1
      return wrk.format("GET", string.format("/slow?t=%.0f", t))
   end
   sent_fast = sent_fast + 1
   return wrk.format("GET", string.format("/fast?t=%.0f", t))
end

function response(status, headers, body)
   local t = now_us()
   if status ~= 200 then
      bad_status = bad_status + 1
      return
   end
   local k = string.match(body, '"k":%s*"(%a)"')
   local s = string.match(body, '"t":%s*"(%d+)"')
   if not k or not s then
      unmatched = unmatched + 1
      return
   end
   local us = t - tonumber(s)
   local b = bucket(us)
   if k == "f" then
      n_fast = n_fast + 1
      hist_fast[b] = (hist_fast[b] or 0) + 1
      if us > max_fast then max_fast = us end
   else
      n_slow = n_slow + 1
      hist_slow[b] = (hist_slow[b] or 0) + 1
      if us > max_slow then max_slow = us end
   end
end

function done(summary, latency, requests)
   local f = assert(io.open(os.getenv("MIXED_OUT"), "w"))
   local e = summary.errors
   f:write(string.format("summary duration_us=%d requests=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
   local tot = { n_fast = 0, n_slow = 0, sent_fast = 0, sent_slow = 0,
                 bad_status = 0, unmatched = 0 }
   local mf, ms = 0, 0
   for _, th in ipairs(threads) do
      for name, _ in pairs(tot) do
         tot[name] = tot[name] + (th:get(name) or 0)
      end
      mf = math.max(mf, th:get("max_fast") or 0)
      ms = math.max(ms, th:get("max_slow") or 0)
      for kind, hname in pairs({ fast = "hist_fast", slow = "hist_slow" }) do
         for b, n in pairs(th:get(hname) or {}) do
            f:write(string.format("%s %.0f %d\n", kind, b, n))
         end
      end
   end
   for name, v in pairs(tot) do
      f:write(string.format("count %s %d\n", name, v))
   end
   f:write(string.format("count max_fast %.0f\ncount max_slow %.0f\n", mf, ms))
   f:close()
end
