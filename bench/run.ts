/**
 * Runs the benchmarks: every `bench/*.bench.ts` (compiled to
 * `dist/bench/*.bench.js`), one after another, each as its own process so
 * that one benchmark's heap and timers never skew another's.
 *
 *   npm run bench              # all of them
 *   npm run bench -- status    # those whose name contains "status"
 */

import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((name) => name.endsWith(".bench.js"))
  .filter((name) => filters.length === 0 || filters.some((f) => name.includes(f)))
  .sort();

if (benches.length === 0) {
  console.error(`no benchmark matches ${filters.join(" ")}`);
  process.exit(2);
}

let failed = 0;
for (const bench of benches) {
  console.log(`\n=== ${bench.replace(/\.bench\.js$/, "")} ===`);
  const result = spawnSync(process.execPath, [path.join(here, bench)], { stdio: "inherit" });
  if (result.status !== 0) {
    failed += 1;
    console.error(`benchmark ${bench} failed (exit ${result.status ?? result.signal ?? "?"})`);
  }
}
process.exit(failed === 0 ? 0 : 1);
