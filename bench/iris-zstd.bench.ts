/**
 * `nix copy --from` through irisd with `[server] compression = "zstd"`
 * against the same irisd uncompressed, in one run: two daemons over one
 * chroot store of real content (store paths added from folders of this
 * machine: a JDK's libraries, TypeScript, Prettier), a real Nix 2.8 client
 * copying into a fresh store each round, rounds alternating.
 *
 * Reported: bytes on the wire (the daemons' `irisd_http_response_body_bytes_total`,
 * every route) and wall time, the first zstd round (which compresses) apart
 * from the later ones (which serve the kept files). On loopback the bytes
 * cost nothing, so time measures the CPU price; the bytes are what a slow
 * link would carry. BENCH_ZSTD_COPY_DIRS=dir1:dir2 picks other folders.
 */

import { existsSync } from "node:fs";
import path from "node:path";

import { httpRequest, startIrisd, stopAllIrisd, type IrisdProcess } from "../test/helpers/irisd.js";
import { addToStore, makeChrootStore, nixCopy } from "../test/helpers/nix.js";
import { removeDir, tempDir } from "../test/helpers/process.js";
import { median } from "./lib-timing.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DIRS = (
  process.env.BENCH_ZSTD_COPY_DIRS ??
  "/usr/lib/jvm/default-java/lib:node_modules/typescript:node_modules/prettier"
)
  .split(":")
  .filter((d) => existsSync(d));

async function wireBytes(node: IrisdProcess): Promise<number> {
  const text = (await httpRequest(`${node.url}/metrics`)).body.toString("utf8");
  let total = 0;
  for (const match of text.matchAll(/^irisd_http_response_body_bytes_total\{[^}]*\} (\d+)/gm)) {
    total += Number(match[1]);
  }
  return total;
}

async function copyOnce(
  node: IrisdProcess,
  paths: readonly string[],
  dir: string,
  name: string,
): Promise<{ ms: number; bytes: number }> {
  const before = await wireBytes(node);
  const client = path.join(dir, name);
  const started = performance.now();
  await nixCopy({
    from: node.url,
    to: client,
    paths,
    checkSigs: false,
    cacheDir: path.join(dir, `xdg-${name}`),
    timeoutMs: 600_000,
  });
  const ms = performance.now() - started;
  const bytes = (await wireBytes(node)) - before;
  await removeDir(client);
  return { ms, bytes };
}

function stats(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${(sorted[0] ?? NaN).toFixed(2)}/${median(sorted).toFixed(2)}/${(sorted[sorted.length - 1] ?? NaN).toFixed(2)}`;
}

async function main(): Promise<void> {
  const dir = await tempDir("bench-iris-zstd");
  try {
    const paths: string[] = [];
    for (const folder of DIRS) paths.push(await addToStore(path.resolve(folder)));
    const store = await makeChrootStore(paths, { root: path.join(dir, "store") });
    const plain = await startIrisd({ storeRoot: store.root });
    const zstd = await startIrisd({
      storeRoot: store.root,
      compression: "zstd",
      cache: { dir: path.join(dir, "cache") },
    });
    console.log(`paths: ${DIRS.join(", ")}`);
    const cold = await copyOnce(zstd, paths, dir, "cold");
    const none = await copyOnce(plain, paths, dir, "warmup");
    console.log(
      `first zstd copy (compresses): ${(cold.bytes / 1e6).toFixed(1)} MB on the wire in ` +
        `${(cold.ms / 1000).toFixed(2)} s; uncompressed: ${(none.bytes / 1e6).toFixed(1)} MB in ${(none.ms / 1000).toFixed(2)} s`,
    );
    const timeRatios: number[] = [];
    const byteRatios: number[] = [];
    const zstdMs: number[] = [];
    const plainMs: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const z = await copyOnce(zstd, paths, dir, `z${round}`);
      const p = await copyOnce(plain, paths, dir, `p${round}`);
      zstdMs.push(z.ms);
      plainMs.push(p.ms);
      timeRatios.push(z.ms / p.ms);
      byteRatios.push(z.bytes / p.bytes);
    }
    console.log(
      `kept zstd files vs uncompressed, ${ROUNDS} alternating rounds (min/median/max):\n` +
        `  time  zstd/none ${stats(timeRatios)} (median ${(median(zstdMs) / 1000).toFixed(2)} s vs ${(median(plainMs) / 1000).toFixed(2)} s)\n` +
        `  bytes zstd/none ${stats(byteRatios)}`,
    );
  } finally {
    await stopAllIrisd();
    await removeDir(dir);
  }
}

await main();
