-- wrk script that only reports: at the end of the run, wrk's own latency
-- distribution as percentiles, one "percentile microseconds" line each, in
-- the file named by WRK_LATENCY_OUT (bench.py's run_wrk, for suite.py's
-- latency plot).  No request() or response() function, so wrk keeps its
-- fast path: the same load as without a script.

local points = { 0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95,
                 96, 97, 98, 99, 99.5, 99.7, 99.9, 99.95, 99.99, 99.999 }

function done(summary, latency, requests)
   local f = assert(io.open(os.getenv("WRK_LATENCY_OUT"), "w"))
   for _, p in ipairs(points) do
      f:write(string.format("%g %d\n", p, latency:percentile(p)))
   end
   f:write(string.format("100 %d\n", latency.max))
   f:close()
end
