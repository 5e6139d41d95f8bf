/**
 * Helpers for the Nix benchmarks: a large synthetic tree (many small files
 * and a few big ones), the Nix test environment, medians and a table
 * printer that puts our figure beside the baseline measured in the same run.
 */

import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";

export const NIX_BENCH_ENV: NodeJS.ProcessEnv = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? "/root",
  NIX_CONFIG: "experimental-features = nix-command\nsandbox = false\nsubstituters =",
};

export interface TreeSpec {
  directories: number;
  filesPerDirectory: number;
  bigFiles: number;
  bigFileBytes: number;
}

export interface BenchTree {
  root: string;
  files: number;
  bytes: number;
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode), so runs are comparable. */
function pool(bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  for (let offset = 0, i = 0; offset < bytes; offset += 32, i++) {
    createHash("sha256").update(`ogygia-bench-${i}`).digest().copy(out, offset);
  }
  return out;
}

/** Small-file sizes as found in real store paths: mostly small, a tail up to 64 KiB. */
const SMALL_SIZES = [0, 37, 120, 512, 900, 2048, 4000, 7000, 12_000, 30_000, 65_536];

/** Writes the tree under `root` and returns its shape. */
export function makeBenchTree(root: string, spec: TreeSpec): BenchTree {
  const data = pool(16 * 1024 * 1024);
  let files = 0;
  let bytes = 0;
  let cursor = 0;
  const write = (file: string, size: number, executable: boolean): void => {
    const fd = openSync(file, "w", executable ? 0o755 : 0o644);
    try {
      let left = size;
      while (left > 0) {
        const start = cursor % (data.length - 1);
        const n = Math.min(left, data.length - start);
        writeSync(fd, data, start, n);
        left -= n;
        cursor += n + 7;
      }
    } finally {
      closeSync(fd);
    }
    files += 1;
    bytes += size;
  };
  mkdirSync(root, { recursive: true });
  for (let d = 0; d < spec.directories; d++) {
    const dir = path.join(root, `lib${d % 10}`, `pkg-${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < spec.filesPerDirectory; f++) {
      const size = SMALL_SIZES[(d * 7 + f * 13) % SMALL_SIZES.length] ?? 0;
      write(path.join(dir, `file-${f}.dat`), size, f % 17 === 0);
    }
  }
  const big = path.join(root, "share", "big");
  mkdirSync(big, { recursive: true });
  for (let b = 0; b < spec.bigFiles; b++) {
    write(path.join(big, `blob-${b}`), spec.bigFileBytes + b * 3, false);
  }
  return { root, files, bytes };
}

/** Median of a list of numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? NaN) + upper) / 2;
}

export interface Row {
  name: string;
  ours: string;
  baseline: string;
  ratio: string;
}

/** Prints rows as an aligned table. */
export function printTable(title: string, rows: readonly Row[]): void {
  const header: Row = { name: title, ours: "ours", baseline: "baseline", ratio: "ours/baseline" };
  const all = [header, ...rows];
  const width = (key: keyof Row): number => Math.max(...all.map((r) => r[key].length));
  const line = (r: Row): string =>
    [
      r.name.padEnd(width("name")),
      r.ours.padStart(width("ours")),
      r.baseline.padStart(width("baseline")),
      r.ratio.padStart(width("ratio")),
    ].join("  ");
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
