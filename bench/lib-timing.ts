/**
 * Small helpers shared by the benchmarks: timing commands, medians, ratios,
 * and printing figures beside their baselines.
 */

import { spawnSync, type SpawnSyncOptions } from "node:child_process";

export interface CommandTiming {
  /** Wall time of each run, in milliseconds. */
  runs: number[];
  median: number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  const upper = sorted[mid] ?? NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? NaN) + upper) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? NaN;
}

/** Runs a command once and returns its wall time in ms; throws if it fails. */
export function timeOnce(
  command: string,
  args: readonly string[],
  options: SpawnSyncOptions = {},
): number {
  const started = performance.now();
  const result = spawnSync(command, args, { stdio: ["ignore", "ignore", "pipe"], ...options });
  const elapsed = performance.now() - started;
  if (result.status !== 0) {
    const stderr = String(result.stderr);
    throw new Error(
      `${command} ${args.join(" ")} failed (exit ${result.status ?? result.signal}): ${stderr}`,
    );
  }
  return elapsed;
}

/**
 * Times several commands side by side: each round runs every command once, in
 * turn, so that noise from a shared machine falls on all of them alike.
 */
export function alternate(
  commands: Record<
    string,
    { command: string; args: readonly string[]; options?: SpawnSyncOptions }
  >,
  { rounds = 10, warmup = 2 } = {},
): Record<string, CommandTiming> {
  const runs: Record<string, number[]> = {};
  for (const name of Object.keys(commands)) runs[name] = [];
  for (let round = 0; round < warmup + rounds; round++) {
    for (const [name, { command, args, options }] of Object.entries(commands)) {
      const ms = timeOnce(command, args, options);
      if (round >= warmup) runs[name]?.push(ms);
    }
  }
  const out: Record<string, CommandTiming> = {};
  for (const [name, list] of Object.entries(runs)) out[name] = { runs: list, median: median(list) };
  return out;
}

export function formatMs(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`;
}

/** Prints a table of rows (first row is the header), columns padded. */
export function printTable(rows: readonly (readonly string[])[]): void {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  for (const row of rows)
    console.log(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    );
}

/**
 * The ratio `ours / base` of each round (runs of `alternate`, same round same
 * index), as "median (min-max)": pairing keeps the ratio meaningful when the
 * machine's speed drifts during the run.
 */
export function pairedRatio(ours: readonly number[], base: readonly number[]): string {
  const ratios = ours.map((ms, i) => ms / (base[i] ?? NaN));
  const sorted = [...ratios].sort((a, b) => a - b);
  const low = sorted[0] ?? NaN;
  const high = sorted.at(-1) ?? NaN;
  return `${median(ratios).toFixed(2)}x (${low.toFixed(2)}-${high.toFixed(2)})`;
}
