/**
 * Store database lookups per second on 100,000 paths, side by side with
 * Nix 2.8 answering the same kind of question on the same database.
 *
 * Ours: openStoreDb on the chroot store, then hash part -> path, hash part
 * -> full info (references and signatures included), misses, and full
 * path -> info. Baseline: `nix-store --query --hash <5000 paths>` in one
 * process (Nix's queryPathInfo per path), start-up measured and
 * subtracted. Medians of alternating rounds.
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { openStoreDb, parseStorePath } from "../src/nix/index.js";
import { makeSyntheticStore } from "./lib-nix-db.js";
import { NIX_BENCH_ENV, median, printTable } from "./lib-nix-tree.js";

const PATHS = 100_000;
const LOOKUPS = 50_000;
const NIX_BATCH = 5_000;
const ROUNDS = 5;

/** A deterministic shuffle, so every round asks in the same scattered order. */
function scattered<T>(items: readonly T[], count: number): T[] {
  const out: T[] = [];
  let x = 12345;
  for (let i = 0; i < count; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const item = items[x % items.length];
    if (item !== undefined) out.push(item);
  }
  return out;
}

function timeNix(args: string[]): number {
  const started = performance.now();
  const result = spawnSync("nix-store", args, {
    env: NIX_BENCH_ENV,
    stdio: ["ignore", "ignore", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
  const elapsed = performance.now() - started;
  if (result.status !== 0) throw new Error(`nix-store failed: ${String(result.stderr)}`);
  return elapsed;
}

function perSecond(count: number, ms: number): string {
  return `${Math.round((count * 1000) / ms).toLocaleString("en-US")}/s`;
}

function main(): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ogygia-bench-db-"));
  try {
    const started = performance.now();
    const store = makeSyntheticStore(path.join(dir, "store"), PATHS);
    console.log(
      `database: ${PATHS} paths registered by nix-store --load-db in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const db = openStoreDb({ root: store.root });
    try {
      if (db.countValidPaths() !== PATHS) throw new Error("the synthetic store is incomplete");
      const hashParts = scattered(store.paths, LOOKUPS).map((p) => parseStorePath(p).hashPart);
      const fullPaths = scattered(store.paths, LOOKUPS);
      const misses = hashParts.map((h) => `${h.slice(0, 31)}${h.endsWith("0") ? "1" : "0"}`);
      const batch = scattered(store.paths, NIX_BATCH);
      const one = [store.paths[0] ?? ""];

      /** Milliseconds to run `lookup` on every item. */
      const timeEach = <T>(items: readonly T[], lookup: (item: T) => unknown): number => {
        const t0 = performance.now();
        for (const item of items) lookup(item);
        return performance.now() - t0;
      };
      const results: Record<string, number[]> = {
        pathByHash: [],
        infoByHash: [],
        miss: [],
        infoByPath: [],
        changed: [],
        nixBatch: [],
        nixOne: [],
      };
      for (let round = 0; round < ROUNDS + 1; round++) {
        const record = (key: string, ms: number): void => {
          if (round > 0) results[key]?.push(ms); // round 0 warms caches and the JIT
        };
        record(
          "pathByHash",
          timeEach(hashParts, (h) => db.queryPathFromHashPart(h)),
        );
        record(
          "infoByHash",
          timeEach(hashParts, (h) => db.queryPathInfoByHashPart(h)),
        );
        record(
          "miss",
          timeEach(misses, (h) => db.queryPathFromHashPart(h)),
        );
        record(
          "infoByPath",
          timeEach(fullPaths, (p) => db.queryPathInfo(p)),
        );
        record(
          "changed",
          timeEach(hashParts, () => db.hasChanged()),
        );
        record("nixBatch", timeNix(["--store", store.root, "--query", "--hash", ...batch]));
        record("nixOne", timeNix(["--store", store.root, "--query", "--hash", ...one]));
      }

      const m = (key: string): number => median(results[key] ?? []);
      const nixPerLookupMs = Math.max(1e-6, (m("nixBatch") - m("nixOne")) / (NIX_BATCH - 1));
      const nixRate = 1000 / nixPerLookupMs;
      const row = (name: string, key: string) => {
        const rate = (LOOKUPS * 1000) / m(key);
        return {
          name,
          ours: perSecond(LOOKUPS, m(key)),
          baseline: `${Math.round(nixRate).toLocaleString("en-US")}/s`,
          ratio: `${(rate / nixRate).toFixed(2)}x`,
        };
      };
      console.log(
        `medians of ${ROUNDS} rounds of ${LOOKUPS} lookups; baseline: nix-store --query --hash over ${NIX_BATCH} paths, start-up (${m("nixOne").toFixed(0)} ms) subtracted`,
      );
      printTable(`lookups in ${PATHS} paths`, [
        row("hash part -> path", "pathByHash"),
        row("hash part -> info (refs, sigs)", "infoByHash"),
        row("hash part miss", "miss"),
        row("full path -> info", "infoByPath"),
        {
          name: "has the store changed? (data_version)",
          ours: perSecond(LOOKUPS, m("changed")),
          baseline: "-",
          ratio: "-",
        },
      ]);
    } finally {
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
