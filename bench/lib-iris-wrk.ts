/**
 * A wrk load run on narinfo: a Lua script rotates through the hash parts
 * and reports, from wrk's own accounting, requests, errors and latency
 * percentiles as one JSON line.
 */

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";

export interface WrkResult {
  requests: number;
  durationSeconds: number;
  requestsPerSecond: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** Latency percentiles in microseconds. */
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
}

function luaScript(hashParts: readonly string[]): string {
  return `local hashes = { ${hashParts.map((h) => `"${h}"`).join(", ")} }
local n = #hashes
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/" .. hashes[(counter % n) + 1] .. ".narinfo")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
`;
}

/** Runs wrk against `baseUrl` for `seconds` with `connections` connections. */
export function runWrk(options: {
  baseUrl: string;
  hashParts: readonly string[];
  workDir: string;
  connections: number;
  seconds: number;
  threads: number;
}): WrkResult {
  const script = path.join(options.workDir, "narinfo.lua");
  writeFileSync(script, luaScript(options.hashParts));
  const result = spawnSync(
    "wrk",
    [
      `-t${options.threads}`,
      `-c${options.connections}`,
      `-d${options.seconds}s`,
      "--timeout",
      "10s",
      "-s",
      script,
      options.baseUrl,
    ],
    { encoding: "utf8" },
  );
  if (result.status !== 0) throw new Error(`wrk failed (${result.status}): ${result.stderr}`);
  const line = result.stdout.split("\n").find((l) => l.startsWith("WRKJSON "));
  if (line === undefined) throw new Error(`wrk printed no summary:\n${result.stdout}`);
  const raw = JSON.parse(line.slice("WRKJSON ".length)) as Record<string, number>;
  const get = (key: string): number => raw[key] ?? NaN;
  const durationSeconds = get("duration_us") / 1e6;
  return {
    requests: get("requests"),
    durationSeconds,
    requestsPerSecond: get("requests") / durationSeconds,
    errors: {
      connect: get("connect"),
      read: get("read"),
      write: get("write"),
      status: get("status"),
      timeout: get("timeout"),
    },
    latencyUs: {
      p50: get("p50"),
      p90: get("p90"),
      p99: get("p99"),
      p999: get("p999"),
      max: get("max"),
      mean: get("mean"),
    },
  };
}
