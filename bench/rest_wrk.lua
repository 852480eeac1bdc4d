-- wrk script of bench/rest.py. BENCH_MODE: get | find | create; BENCH_IDS_FILE: one id a line.
-- Prints one line "WRK_JSON {...}" with requests, duration, latency percentiles and errors.

local mode = os.getenv("BENCH_MODE") or "get"
local ids_file = os.getenv("BENCH_IDS_FILE")
local threads = {}
local ids = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 100 + (tid or 0))
  if ids_file then
    for line in io.lines(ids_file) do
      if #line > 0 then
        ids[#ids + 1] = line
      end
    end
  end
  if mode == "get" and #ids == 0 then
    error("BENCH_MODE=get needs ids in BENCH_IDS_FILE")
  end
end

function request()
  counter = counter + 1
  if mode == "get" then
    return wrk.format("GET", "/messages/" .. ids[math.random(#ids)])
  elseif mode == "find" then
    return wrk.format("GET", "/messages?tag=t" .. math.random(0, 9) .. "&$limit=10")
  end
  local n = (tid or 0) * 100000000 + counter
  local body = string.format('{"text":"bench message %d","n":%d,"tag":"t%d"}', n, n, n % 10)
  return wrk.format("POST", "/messages", { ["Content-Type"] = "application/json" }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout
  ))
end
