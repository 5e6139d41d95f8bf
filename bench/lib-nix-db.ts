/**
 * A synthetic Nix store database for benchmarks: `count` valid paths with
 * references, registered by Nix itself (`nix-store --load-db` into a chroot
 * store), so the schema, indexes and encodings are exactly Nix 2.8's.
 */

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";

import { encodeNix32 } from "../src/nix/index.js";
import { NIX_BENCH_ENV } from "./lib-nix-tree.js";

export interface SyntheticStore {
  root: string;
  /** Every registered path, in registration order. */
  paths: string[];
}

/** Deterministic store paths: nix32 of a SHA-256 prefix, as real hash parts look. */
function syntheticPath(i: number): string {
  const digest = createHash("sha256").update(`ogygia-bench-path-${i}`).digest().subarray(0, 20);
  return `/nix/store/${encodeNix32(digest)}-pkg-${i % 997}-${i}`;
}

/** Registers `count` paths (each referring to up to 3 earlier ones) in a new store at `root`. */
export function makeSyntheticStore(root: string, count: number): SyntheticStore {
  const paths = Array.from({ length: count }, (_, i) => syntheticPath(i));
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = paths[i] ?? "";
    const refs = i === 0 ? [] : [...new Set([(i * 7) % i, (i * 13) % i, i - 1])];
    // The dump-db format: path, NAR hash (hex), NAR size, deriver, reference count, references.
    lines.push(path, createHash("sha256").update(path).digest("hex"), String(1000 + i), "");
    lines.push(String(refs.length), ...refs.map((r) => paths[r] ?? ""));
  }
  const result = spawnSync("nix-store", ["--store", root, "--load-db"], {
    env: NIX_BENCH_ENV,
    input: `${lines.join("\n")}\n`,
    stdio: ["pipe", "ignore", "pipe"],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`nix-store --load-db failed: ${String(result.stderr)}`);
  }
  return { root, paths };
}
