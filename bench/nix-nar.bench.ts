/**
 * NAR serialisation throughput, side by side with Nix 2.8 on the same tree:
 *
 *  - dump to /dev/null:  writeNar into an fs.WriteStream on /dev/null
 *                        vs `nix-store --dump <tree> > /dev/null`
 *  - dump + SHA-256:     hashPath (NAR hash and size)
 *                        vs `nix-hash --type sha256 <tree>` (Nix hashing the NAR)
 *
 * Runs alternate (ours, Nix, ours, Nix, ...) after a warm-up that fills the
 * page cache, and medians are reported. Nix's times are wall times of a
 * process; its start-up cost (dumping a 1-byte file) is measured and
 * subtracted, so the ratio does not flatter us. Target: >= 0.8x of Nix.
 */

import { spawnSync } from "node:child_process";
import {
  createWriteStream,
  mkdtempSync,
  openSync,
  closeSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { finished } from "node:stream/promises";

import { hashPath, narSizeOf, narStream, writeNar } from "../src/nix/index.js";
import { NIX_BENCH_ENV, makeBenchTree, median, printTable } from "./lib-nix-tree.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

function timeCommand(command: string, args: string[]): number {
  const devNull = openSync("/dev/null", "w");
  try {
    const started = performance.now();
    const result = spawnSync(command, args, {
      env: NIX_BENCH_ENV,
      stdio: ["ignore", devNull, "pipe"],
    });
    const elapsed = performance.now() - started;
    if (result.status !== 0) {
      throw new Error(`${command} ${args.join(" ")} failed: ${String(result.stderr)}`);
    }
    return elapsed;
  } finally {
    closeSync(devNull);
  }
}

async function timeOurs(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

async function dumpToDevNull(root: string): Promise<void> {
  const out = createWriteStream("/dev/null");
  await writeNar(root, out, { reuseBuffers: true });
  out.end();
  await finished(out);
}

function mbps(bytes: number, ms: number): string {
  return `${((bytes / 1e6) * (1000 / ms)).toFixed(0)} MB/s`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ogygia-bench-nar-"));
  try {
    const started = performance.now();
    const tree = makeBenchTree(path.join(dir, "tree"), {
      directories: 400,
      filesPerDirectory: 75,
      bigFiles: 4,
      bigFileBytes: 48 * 1024 * 1024,
    });
    // Let writeback of the fresh tree finish, so it does not compete with the runs.
    spawnSync("sync");
    const narBytes = narSizeOf(tree.root);
    const tiny = path.join(dir, "tiny");
    writeFileSync(tiny, "x");
    console.log(
      `tree: ${tree.files} files, ${(tree.bytes / 1e6).toFixed(0)} MB of contents, NAR ${(narBytes / 1e6).toFixed(0)} MB (generated in ${((performance.now() - started) / 1000).toFixed(1)} s)`,
    );

    // Warm the page cache and the JIT.
    timeCommand("nix-store", ["--dump", tree.root]);
    await dumpToDevNull(tree.root);
    await hashPath(tree.root);

    // The same split into its two halves: small files only, big files only.
    const smallPart = path.join(tree.root, "lib3");
    const bigPart = path.join(tree.root, "share");
    const smallBytes = narSizeOf(smallPart);
    const bigBytes = narSizeOf(bigPart);

    const startup: number[] = [];
    const nixDump: number[] = [];
    const ourDump: number[] = [];
    const nixHash: number[] = [];
    const ourHash: number[] = [];
    const nixSmall: number[] = [];
    const ourSmall: number[] = [];
    const nixBig: number[] = [];
    const ourBig: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      startup.push(timeCommand("nix-store", ["--dump", tiny]));
      ourDump.push(await timeOurs(() => dumpToDevNull(tree.root)));
      nixDump.push(timeCommand("nix-store", ["--dump", tree.root]));
      ourHash.push(await timeOurs(() => hashPath(tree.root)));
      nixHash.push(timeCommand("nix-hash", ["--type", "sha256", tree.root]));
      ourSmall.push(await timeOurs(() => dumpToDevNull(smallPart)));
      nixSmall.push(timeCommand("nix-store", ["--dump", smallPart]));
      ourBig.push(await timeOurs(() => dumpToDevNull(bigPart)));
      nixBig.push(timeCommand("nix-store", ["--dump", bigPart]));
    }

    // Serving the last MiB of the NAR with a range: only metadata is walked before it.
    const rangeStart = narBytes - 1024 * 1024;
    const ranged: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      ranged.push(
        await timeOurs(async () => {
          let n = 0;
          for await (const chunk of narStream(tree.root, { start: rangeStart })) n += chunk.length;
          if (n !== 1024 * 1024) throw new Error(`range produced ${n} bytes`);
        }),
      );
    }

    const start = median(startup);
    const row = (name: string, ours: number[], theirs: number[], bytes = narBytes) => {
      const o = median(ours);
      const wall = median(theirs);
      const t = Math.max(1, wall - start);
      // Per round (paired): Nix's time without start-up over ours; min / median / max.
      const r = ours
        .map((v, i) => Math.max(1, (theirs[i] ?? NaN) - start) / v)
        .sort((a, b) => a - b);
      const f = (v: number | undefined): string => (v ?? NaN).toFixed(2);
      return {
        name,
        ours: `${o.toFixed(0)} ms ${mbps(bytes, o)}`,
        baseline: `${t.toFixed(0)} ms ${mbps(bytes, t)}`,
        ratio: `${f(r[0])} / ${f(median(r))} / ${f(r.at(-1))}x (${(wall / o).toFixed(2)}x vs wall)`,
      };
    };
    console.log(
      `medians of ${ROUNDS} alternating runs; ratio (min / median / max over rounds) = Nix time / our time (throughput, >1 is faster than Nix), with Nix's start-up (${start.toFixed(1)} ms) subtracted, and against its whole wall time`,
    );
    printTable("NAR of the tree", [
      row("dump to /dev/null (vs nix-store --dump)", ourDump, nixDump),
      row("dump + SHA-256 (vs nix-hash --type sha256)", ourHash, nixHash),
      row(
        `  small files only (${(smallBytes / 1e6).toFixed(0)} MB)`,
        ourSmall,
        nixSmall,
        smallBytes,
      ),
      row(`  big files only (${(bigBytes / 1e6).toFixed(0)} MB)`, ourBig, nixBig, bigBytes),
      {
        name: "range: last 1 MiB (metadata walk only)",
        ours: `${median(ranged).toFixed(0)} ms`,
        baseline: "-",
        ratio: "-",
      },
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
