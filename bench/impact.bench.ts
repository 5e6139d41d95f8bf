/**
 * `ogygia who-runs` over 1,000 simulated hosts, and `ogygia diff` against
 * `nix store diff-closures` on the same pair.
 *
 * Store: a chroot store whose database Nix itself fills (`nix-store
 * --load-db`): 1,800 paths every host shares, and 200 paths of each host's
 * own (its system path at the top), so each closure has 2,000 paths, 90 %
 * shared, and the fleet 201,800 distinct paths. A real ogygia-irisd serves
 * that store (narinfos signed on the fly with a test key); the 1,000 hosts
 * are `current_system` keys in a real etcd. who-runs runs with an empty
 * local store, so every path is read through irisd: the figure is its time
 * and its requests against the distinct paths (and against the 2,000,000 a
 * walk per host without a shared cache would make), with `POST /closure`
 * batches against a narinfo per path (what an irisd without the endpoint
 * gets), alternating rounds.
 *
 * diff: two of those hosts' systems (2,000 paths each) read from the local
 * store database, rounds alternating with `nix store diff-closures --store`
 * on the same database; ratio per round, min / median / max.
 *
 *   npm run bench -- impact
 *   BENCH_ROUNDS=3 IMPACT_BENCH_HOSTS=200 npm run bench -- impact   # quicker
 *   IMPACT_BENCH_PROF=/tmp/prof npm run bench -- impact   # CPU profiles of who-runs and irisd
 *   IMPACT_BENCH_BASELINE_ROUNDS=0 ...   # skip the per-path rounds (5-8 min each at 1,000 hosts)
 *   IMPACT_BENCH_KEEP=1 ...              # keep the store (its folder is printed)
 *
 * The first who-runs round also pays for irisd reading the store's
 * reference graph (it is built on the first POST /closure).
 */

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { encodeNix32 } from "../src/nix/index.js";
import { OGYGIA_BIN } from "../test/helpers/cli.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { startIrisd } from "../test/helpers/irisd.js";
import { generateKeys } from "../test/helpers/nix.js";
import { writeConfig } from "../test/helpers/system-root.js";
import { NIX_BENCH_ENV } from "./lib-nix-tree.js";
import { alternate, formatMs, median, pairedRatio, printTable } from "./lib-timing.js";

const HOSTS = Number(process.env.IMPACT_BENCH_HOSTS ?? 1000);
const SHARED = 1800;
const OWN = 200;
/** Shared paths per layer: 1,800 in 20 layers. */
const LAYER = 90;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WHO_ROUNDS = Math.max(1, Math.min(ROUNDS, Number(process.env.IMPACT_BENCH_WHO_ROUNDS ?? 3)));
/** Rounds of the per-path baseline (minutes each at 1,000 hosts). */
const BASELINE_ROUNDS = Math.max(0, Number(process.env.IMPACT_BENCH_BASELINE_ROUNDS ?? 1));
const NAMESPACE = "/nixos/impact-bench";
/** IMPACT_BENCH_PROF=DIR: write a V8 CPU profile of each who-runs run to DIR. */
const PROFILE_ARGS =
  process.env.IMPACT_BENCH_PROF === undefined
    ? []
    : ["--cpu-prof", "--cpu-prof-dir", process.env.IMPACT_BENCH_PROF];

function storePath(seed: string, name: string): string {
  const digest = createHash("sha256").update(seed).digest().subarray(0, 20);
  return `/nix/store/${encodeNix32(digest)}-${name}`;
}

interface Registration {
  path: string;
  refs: string[];
  size: number;
}

/**
 * The fleet's paths, in layers as real closures are (a NixOS system's is
 * some 20 references deep): each shared path refers to three of the layer
 * below; each host's own paths to the shared top layer or to its own below.
 */
function fleetPaths(): { all: Registration[]; systems: string[] } {
  const all: Registration[] = [];
  const shared: string[] = [];
  for (let i = 0; i < SHARED; i++) {
    const p = storePath(`shared-${i}`, `pkg${i % 311}-${1 + (i % 7)}.${i % 13}`);
    const refs =
      i === 0 ? [] : [...new Set([shared[i - 1], shared[(i * 7) % i], shared[(i * 13) % i]])];
    all.push({ path: p, refs: refs.filter((r): r is string => r !== undefined), size: 1000 + i });
    shared.push(p);
  }
  const topLayer = shared.slice(SHARED - LAYER);
  const systems: string[] = [];
  for (let h = 0; h < HOSTS; h++) {
    const own: string[] = [];
    for (let k = 0; k < OWN; k++) {
      const name =
        k === OWN - 1
          ? `nixos-system-host${h}-23.05`
          : k === 0
            ? `libfoo-1.${h % 3}`
            : `host${h}-file${k}`;
      const p = storePath(`host-${h}-${k}`, name);
      // The host's own paths: 10 layers of 20, the system path on top referring to the layer below.
      const ownLayer = Math.floor(k / 20);
      const refs =
        ownLayer === 0
          ? topLayer.filter((_, j) => j % 20 === k % 20)
          : [0, 7, 13].map((d) => own[(ownLayer - 1) * 20 + ((k + d) % 20)] ?? "");
      // The system path also refers to the rest of its own layer, so the closure holds all 200.
      if (k === OWN - 1) refs.push(...own.slice(OWN - 20, OWN - 1));
      all.push({ path: p, refs: [...new Set(refs)], size: 500 + k });
      own.push(p);
    }
    systems.push(own[OWN - 1] ?? "");
  }
  return { all, systems };
}

function loadDb(root: string, regs: readonly Registration[]): void {
  const lines: string[] = [];
  for (const r of regs) {
    lines.push(r.path, createHash("sha256").update(r.path).digest("hex"), String(r.size), "");
    lines.push(String(r.refs.length), ...r.refs);
  }
  const result = spawnSync("nix-store", ["--store", root, "--load-db"], {
    env: NIX_BENCH_ENV,
    input: `${lines.join("\n")}\n`,
    stdio: ["pipe", "ignore", "pipe"],
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`nix-store --load-db failed: ${String(result.stderr)}`);
}

interface WhoRunsJson {
  hosts: unknown[];
  unreadable: unknown[];
  stats: { irisdRequests: number; distinctPaths: number; localReads: number };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ogygia-impact-bench-"));
  const storeRoot = path.join(dir, "store");
  const emptyStore = path.join(dir, "empty");
  mkdirSync(emptyStore);
  const { all, systems } = fleetPaths();
  console.log(
    `registering ${all.length} paths (${HOSTS} hosts × ${SHARED + OWN}-path closures) ...`,
  );
  let started = performance.now();
  loadDb(storeRoot, all);
  console.log(`  nix-store --load-db: ${formatMs(performance.now() - started)}`);
  const keys = await generateKeys(dir, "impact-bench-1");
  const etcd = await startEtcd();
  const irisd = await startIrisd({
    storeRoot,
    secretKeyFiles: [keys.secretKeyFile],
    timeoutMs: 120_000,
    nodeArgs:
      process.env.IMPACT_BENCH_PROF === undefined
        ? []
        : [
            "--cpu-prof",
            `--cpu-prof-dir=${process.env.IMPACT_BENCH_PROF}`,
            "--cpu-prof-name=irisd.cpuprofile",
          ],
  });
  try {
    started = performance.now();
    await Promise.all(
      systems.map((system, h) => etcd.client.put(`${NAMESPACE}/host${h}/current_system`, system)),
    );
    console.log(`  ${HOSTS} hosts published to etcd: ${formatMs(performance.now() - started)}`);
    const config = await writeConfig(
      [`[ogygia.etcd]`, `endpoints = ["${etcd.endpoint}"]`, `namespace = "${NAMESPACE}"`, ""].join(
        "\n",
      ),
    );

    // who-runs, every path through irisd: POST /closure batches against a
    // narinfo per path (what an irisd without /closure gets), alternating.
    const whoRuns = (perPath: boolean): { ms: number; json: WhoRunsJson } => {
      const t0 = performance.now();
      const run = spawnSync(
        process.execPath,
        [
          ...PROFILE_ARGS,
          path.join(path.dirname(OGYGIA_BIN), "../dist/bundle/launch.cjs"),
          "who-runs",
          "libfoo-1.0",
          "--json",
          "--config",
          config,
          "--store",
          emptyStore,
          "--irisd",
          irisd.url,
        ],
        {
          encoding: "utf8",
          maxBuffer: 512 * 1024 * 1024,
          env: { ...process.env, NODE_OPTIONS: "", OGYGIA_IMPACT_PER_PATH: perPath ? "1" : "" },
        },
      );
      const ms = performance.now() - t0;
      if (run.status !== 0) throw new Error(`who-runs failed (${run.status}): ${run.stderr}`);
      return { ms, json: JSON.parse(run.stdout) as WhoRunsJson };
    };
    const batched: { ms: number; json: WhoRunsJson }[] = [];
    const perPath: { ms: number; json: WhoRunsJson }[] = [];
    for (let round = 0; round < Math.max(WHO_ROUNDS, BASELINE_ROUNDS); round++) {
      if (round < WHO_ROUNDS) batched.push(whoRuns(false));
      if (round < BASELINE_ROUNDS) perPath.push(whoRuns(true));
    }
    const distinct = all.length;
    const naive = HOSTS * (SHARED + OWN);
    const times = (runs: { ms: number }[]): string => {
      const ms = runs.map((r) => r.ms);
      return `${formatMs(Math.min(...ms))} / ${formatMs(median(ms))} / ${formatMs(Math.max(...ms))} (${runs.length} runs)`;
    };
    const requests = (runs: { json: WhoRunsJson }[]): string => {
      const n = runs.at(-1)?.json.stats.irisdRequests ?? 0;
      return `${n} (${(n / distinct).toFixed(4)}x the ${distinct} distinct paths)`;
    };
    const matched = (runs: { json: WhoRunsJson }[]): string => {
      const last = runs.at(-1)?.json;
      return `${last?.hosts.length ?? "?"} / ${last?.unreadable.length ?? "?"}`;
    };
    const ratios = batched.map((b, i) => (perPath[i]?.ms ?? NaN) / b.ms).filter(Number.isFinite);
    console.log("\nwho-runs libfoo-1.0 over the fleet, every path through irisd:");
    printTable([
      ["", "ogygia who-runs (POST /closure)", "a narinfo per path (OGYGIA_IMPACT_PER_PATH=1)"],
      ["time (min / median / max)", times(batched), times(perPath)],
      ["irisd requests", requests(batched), requests(perPath)],
      ["hosts matched / unreadable", matched(batched), matched(perPath)],
      [
        "speed-up, paired rounds (min / median / max)",
        ratios.length === 0
          ? "?"
          : `${Math.min(...ratios).toFixed(1)}x / ${median(ratios).toFixed(1)}x / ${Math.max(...ratios).toFixed(1)}x`,
        "",
      ],
      [
        "per-host walk without a shared cache (computed)",
        "",
        `${naive} requests (${(naive / distinct).toFixed(1)}x)`,
      ],
      ["target", "requests ≈ distinct paths (or fewer), < 5 s", ""],
    ]);

    // diff against nix store diff-closures on the same database.
    const [a = "", b = ""] = systems;
    const timing = alternate(
      {
        ogygia: {
          command: process.execPath,
          args: [
            path.join(path.dirname(OGYGIA_BIN), "../dist/bundle/launch.cjs"),
            "diff",
            a,
            b,
            "--store",
            storeRoot,
            "--irisd",
            irisd.url,
            "--config",
            config,
          ],
          options: { env: { ...process.env, NODE_OPTIONS: "" } },
        },
        nix: {
          command: "nix",
          args: ["store", "diff-closures", "--store", storeRoot, a, b],
          options: { env: NIX_BENCH_ENV },
        },
      },
      { rounds: ROUNDS, warmup: 1 },
    );
    console.log(
      `\ndiff of two ${SHARED + OWN}-path closures (local store database), ${ROUNDS} rounds:`,
    );
    printTable([
      ["", "ogygia diff", "nix store diff-closures", "ratio median (min-max)"],
      [
        "median",
        formatMs(timing.ogygia?.median ?? NaN),
        formatMs(timing.nix?.median ?? NaN),
        pairedRatio(timing.ogygia?.runs ?? [], timing.nix?.runs ?? []),
      ],
    ]);
  } finally {
    await irisd.stop();
    await etcd.stop();
    if (process.env.IMPACT_BENCH_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

await main();
