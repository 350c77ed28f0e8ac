-- wrk script: every request is the next pre-built HTTP request of a file (each a distinct signed ORDER_CONFIRMED
-- with its own Saleor-Signature), so the C load generator sends what Saleor would, one order per request.
--
--   wrk -t2 -c32 -d60s -s bench/wrk/signed_webhooks.lua http://127.0.0.1:PORT -- REQUESTS_FILE THREADS once|cycle
--
-- REQUESTS_FILE holds records "<byte length>\n<raw request bytes>" (bench/wrk_load.py writes it). Thread k of n
-- sends records k, k+n, k+2n, ...: no two threads send the same order. With "once", the run ends as soon as one
-- thread has sent all its records (each order is sent once; -d is then only a time limit): the thread sends SIGINT to
-- wrk, whose main thread otherwise sleeps the whole -d. With "cycle" a thread starts over (for endpoints where
-- repeats do not matter, such as the bare baseline). done() prints one JSON line prefixed "WRK_RESULT " with the
-- counts, the span from the first request sent to the last answer received (elapsed_us: wrk's own duration is -d
-- or up to the SIGINT) and latency percentiles (microseconds).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
int clock_gettime(int clock_id, wrk_timespec *tp);
int getpid(void);
int kill(int pid, int sig);
]]
local CLOCK_MONOTONIC, SIGINT = 1, 2
local timespec = ffi.new("wrk_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1e6 + tonumber(timespec.tv_nsec) / 1e3
end

local threads = {}
local thread_count = 0

-- setup() runs in wrk's main Lua state before each thread's init(); the thread count comes as an argument because
-- a thread's init() runs before the next thread is set up.
function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local requests = {}
local position = 0
local cycle = false
status_200 = 0
status_other = 0
other_codes = ""
exhausted = 0
first_us = 0
last_us = 0

function init(args)
  local path = args[1]
  local thread_total = tonumber(args[2])
  cycle = args[3] == "cycle"
  local file = assert(io.open(path, "rb"))
  local index = 0
  while true do
    local header = file:read("*l")
    if not header then break end
    local record = file:read(tonumber(header))
    if index % thread_total == thread_index then
      table.insert(requests, record)
    end
    index = index + 1
  end
  file:close()
end

local verified = false

function request()
  if thread_index == 0 and not verified then
    -- wrk calls the first thread's request() once before the run, to check for pipelining: that is no send.
    verified = true
    return requests[1]
  end
  position = position + 1
  if first_us == 0 then first_us = now_us() end
  if position > #requests then
    if not cycle then
      if exhausted == 0 then ffi.C.kill(ffi.C.getpid(), SIGINT) end
      exhausted = 1
      wrk.thread:stop()
      -- wrk needs a request to write; this repeat of the last one may still go out before the thread stops (the
      -- app answers it as a duplicate: one row per order).
      return requests[#requests]
    end
    position = 1
  end
  return requests[position]
end

function response(status, headers, body)
  last_us = now_us()
  if status == 200 then
    status_200 = status_200 + 1
  else
    status_other = status_other + 1
    if #other_codes < 200 then
      other_codes = other_codes .. status .. ","
    end
  end
end

function done(summary, latency, requests_stats)
  local ok, other, codes, first, last = 0, 0, "", nil, 0
  for _, t in ipairs(threads) do
    local started = t:get("first_us")
    if started > 0 and (first == nil or started < first) then first = started end
    if t:get("last_us") > last then last = t:get("last_us") end
    ok = ok + t:get("status_200")
    other = other + t:get("status_other")
    codes = codes .. t:get("other_codes")
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"duration_us": %d, "elapsed_us": %d, "requests": %d, "bytes": %d, "status_200": %d, "status_other": %d, ' ..
    '"other_codes": "%s", "errors_connect": %d, "errors_read": %d, "errors_write": %d, "errors_status": %d, ' ..
    '"errors_timeout": %d, "latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"p999": %d}}\n',
    summary.duration, first and last > first and (last - first) or 0, summary.requests, summary.bytes, ok, other, codes, errors.connect, errors.read, errors.write,
    errors.status, errors.timeout, latency.min, latency.mean, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
