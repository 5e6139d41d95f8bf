/**
 * The health check after an activation: the fleet store reachable with the
 * configuration the new system carries (the host did not cut itself off),
 * no failed systemd units, and the configured probes (commands and HTTP
 * GETs). Checked until all pass or the deadline ends.
 */

import path from "node:path";

import { errorMessage } from "../core/index.js";
import { runProgram } from "./host-system.js";

export interface HealthOptions {
  root: string;
  /** Throws when the fleet store cannot be reached with the host's current configuration. */
  reachBackend: () => Promise<void>;
  checkUnits: boolean;
  commands: readonly string[];
  http: readonly string[];
  /** Epoch milliseconds. */
  deadline: number;
  intervalMs: number;
}

/** One round of checks: null when healthy, else why not. */
async function checkOnce(options: HealthOptions, timeoutMs: number): Promise<string | null> {
  try {
    await options.reachBackend();
  } catch (err) {
    return `fleet store unreachable: ${errorMessage(err)}`;
  }
  if (options.checkUnits) {
    const units = await runProgram(
      "systemctl",
      ["list-units", "--failed", "--no-legend", "--plain"],
      { timeoutMs },
    );
    if (units.code !== 0) return `systemctl failed: ${units.output.trim()}`;
    const failed = units.output.split("\n").filter((l) => l.trim() !== "");
    if (failed.length > 0)
      return `failed units: ${failed.map((l) => l.split(/\s+/)[0]).join(", ")}`;
  }
  const env: NodeJS.ProcessEnv = { ...process.env, OGYGIA_ROOT: path.resolve(options.root) };
  for (const command of options.commands) {
    const result = await runProgram("/bin/sh", ["-c", command], { env, timeoutMs });
    if (result.code !== 0) {
      const detail = result.output.trim().split("\n").slice(-1)[0] ?? "";
      return `probe ${JSON.stringify(command)} failed (${result.code ?? "killed"})${detail === "" ? "" : `: ${detail}`}`;
    }
  }
  for (const url of options.http) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
      await response.arrayBuffer();
      if (!response.ok) return `probe ${url} answered ${response.status}`;
    } catch (err) {
      return `probe ${url}: ${errorMessage(err)}`;
    }
  }
  return null;
}

/** Checks until healthy (null) or the deadline; returns the last reason when unhealthy. */
export async function waitHealthy(options: HealthOptions): Promise<string | null> {
  let reason = "no check finished before the deadline";
  for (;;) {
    const left = options.deadline - Date.now();
    if (left <= 0) return reason;
    const result = await checkOnce(options, Math.max(1000, left));
    if (result === null) return null;
    reason = result;
    if (options.deadline - Date.now() <= options.intervalMs) return reason;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
  }
}
