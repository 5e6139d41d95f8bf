/**
 * `ogygia status` speed.
 *
 * 1. Local mode, side by side with `node -e ""` (the floor of any Node CLI):
 *    `bin/ogygia` (its launcher compiles the bundle with the V8 code cache
 *    the build made) and a copy of the package without the cache, which is
 *    what a start costs without it (the npm package ships none).
 *    Target: within 1.15x of the floor.
 * 2. Fleet mode against a real etcd holding 1,000 and 10,000 hosts, side by
 *    side with `etcdctl get --prefix` on the same data: wall time and the
 *    number of gRPC Range requests each makes, and the ratio round by round
 *    (min/median/max). Target: 10,000 hosts <= 2x etcdctl.
 * 3. Fleet mode against a real ZooKeeper with the same host counts, side by
 *    side with the node-by-node read `ogygia status` made before multiRead
 *    (`lib-zk-node-by-node.ts`; ZooKeeper's own CLI is a JVM that takes
 *    seconds to start): wall time, pairwise ratios and the requests the
 *    server received. Target: 10,000 hosts < 1.5 s.
 */

import { copyFile, mkdir, symlink } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { startEtcd, type EtcdServer } from "../test/helpers/etcd.js";
import { removeDir, tempDir } from "../test/helpers/process.js";
import { makeSystemRoot, writeConfig } from "../test/helpers/system-root.js";
import { removeTempDirs } from "../test/support/temp.js";
import { startZooKeeper } from "../test/helpers/zookeeper.js";
import { alternate, formatMs, median, pairedRatio, printTable, timeOnce } from "./lib-timing.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const ogygia = path.resolve(here, "../../bin/ogygia");
const repo = path.resolve(ogygia, "../..");
const nodeByNode = path.join(here, "lib-zk-node-by-node.js");
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);

function revision(i: number, salt: string): string {
  return `${salt}${i.toString(16)}`.padEnd(40, "0").slice(0, 40);
}

/** [min, median, max] of `values`. */
function minMedianMax(values: readonly number[]): [number, number, number] {
  return [Math.min(...values), median(values), Math.max(...values)];
}

async function rangeRequests(etcd: EtcdServer): Promise<number> {
  const text = await (await fetch(`${etcd.endpoint}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("grpc_server_handled_total{") && line.includes('grpc_method="Range"')) {
      total += Number(line.split(" ").at(-1));
    }
  }
  return total;
}

async function seedEtcd(etcd: EtcdServer, namespace: string, hosts: number): Promise<void> {
  const puts: Promise<unknown>[] = [];
  for (let i = 0; i < hosts; i++) {
    const host = `host${i}.example.com`;
    for (const field of ["current", "booted", "nextboot"]) {
      puts.push(etcd.client.put(`${namespace}/${host}/${field}`, revision(i, field[0] ?? "")));
      if (puts.length >= 500) await Promise.all(puts.splice(0));
    }
  }
  await Promise.all(puts);
}

async function main(): Promise<void> {
  const sys = await makeSystemRoot({
    current: revision(1, "a"),
    booted: revision(1, "a"),
    nextboot: revision(2, "b"),
  });
  // Local mode detects the host name as a user's run does (no
  // $OGYGIA_HOSTNAME): its cost is part of the start-up measured.
  const localEnv: NodeJS.ProcessEnv = { ...process.env };
  delete localEnv.OGYGIA_CONFIG;
  delete localEnv.OGYGIA_HOSTNAME;
  const env: NodeJS.ProcessEnv = { ...localEnv, OGYGIA_HOSTNAME: "bench.example.com" };

  // The package without its code cache: what `bin/ogygia` costs without it.
  const noCache = await tempDir("status-bench-no-cache");
  for (const file of [
    "package.json",
    "bin/ogygia",
    "dist/bundle/launch.cjs",
    "dist/bundle/ogygia.cjs",
    "dist/bundle/ogygia-lazy.cjs",
  ]) {
    await mkdir(path.dirname(path.join(noCache, file)), { recursive: true });
    await copyFile(path.join(repo, file), path.join(noCache, file));
  }
  await symlink(path.join(repo, "node_modules"), path.join(noCache, "node_modules"));

  console.log(`Local mode (${ROUNDS * 2} alternating rounds; ratio per round: median (min-max))`);
  const local = alternate(
    {
      'node -e ""': { command: process.execPath, args: ["-e", ""] },
      "ogygia status": {
        command: ogygia,
        args: ["status", "--root", sys.root],
        options: { env: localEnv },
      },
      "no cache": {
        command: path.join(noCache, "bin/ogygia"),
        args: ["status", "--root", sys.root],
        options: { env: localEnv },
      },
    },
    { rounds: ROUNDS * 2 },
  );
  await removeDir(noCache);
  const floor = local['node -e ""'];
  const ours = local["ogygia status"];
  const plain = local["no cache"];
  printTable([
    ["command", "median", "ratio to floor"],
    ['node -e ""', formatMs(floor?.median ?? NaN), "1.00x"],
    [
      "ogygia status (local, bin/ogygia)",
      formatMs(ours?.median ?? NaN),
      `${pairedRatio(ours?.runs ?? [], floor?.runs ?? [])} (target <= 1.15x)`,
    ],
    [
      "ogygia status (local, bin/ogygia without code cache)",
      formatMs(plain?.median ?? NaN),
      pairedRatio(plain?.runs ?? [], floor?.runs ?? []),
    ],
  ]);

  const etcd = await startEtcd();
  const zk = await startZooKeeper();
  try {
    for (const hosts of [1_000, 10_000]) {
      const namespace = `/bench-${hosts}/versions`;
      await seedEtcd(etcd, namespace, hosts);
      const config = await writeConfig(
        `[ogygia.etcd]\nendpoints = ["${etcd.endpoint}"]\nnamespace = "${namespace}"\n`,
      );
      const statusEnv = { ...env, OGYGIA_CONFIG: config };
      const before = await rangeRequests(etcd);
      timeOnce(ogygia, ["status", "--root", sys.root, "--json"], { env: statusEnv });
      const ogygiaRequests = (await rangeRequests(etcd)) - before;
      const before2 = await rangeRequests(etcd);
      timeOnce("etcdctl", ["--endpoints", etcd.endpoint, "get", "--prefix", `${namespace}/`], {
        env: { ...process.env, ETCDCTL_API: "3" },
      });
      const etcdctlRequests = (await rangeRequests(etcd)) - before2;

      const timings = alternate(
        {
          etcdctl: {
            command: "etcdctl",
            args: ["--endpoints", etcd.endpoint, "get", "--prefix", `${namespace}/`],
            options: { env: { ...process.env, ETCDCTL_API: "3" } },
          },
          ogygia: {
            command: ogygia,
            args: ["status", "--root", sys.root],
            options: { env: statusEnv },
          },
        },
        { rounds: ROUNDS },
      );
      const base = timings.etcdctl?.median ?? NaN;
      const mine = timings.ogygia?.median ?? NaN;
      // Round by round: each ogygia run against the etcdctl run beside it.
      const baseRuns = timings.etcdctl?.runs ?? [];
      const ratios = (timings.ogygia?.runs ?? []).map((ms, i) => ms / (baseRuns[i] ?? NaN));
      const sortedRatios = [...ratios].sort((a, b) => a - b);
      const ratioSpread = `${(sortedRatios[0] ?? NaN).toFixed(2)}/${median(ratios).toFixed(2)}/${(sortedRatios.at(-1) ?? NaN).toFixed(2)}x`;
      console.log(
        `\netcd, ${hosts.toLocaleString("en")} hosts (${hosts * 3} keys), ${ROUNDS} rounds`,
      );
      printTable([
        ["command", "median", "Range requests", "ratio min/median/max"],
        ["etcdctl get --prefix", formatMs(base), String(etcdctlRequests), "1.00x"],
        [
          "ogygia status",
          formatMs(mine),
          String(ogygiaRequests),
          `${ratioSpread}${hosts === 10_000 ? ` (target <= 2x: ${median(ratios) <= 2 ? "met" : "MISSED"})` : ""}`,
        ],
      ]);

      const zkNamespace = `/bench-${hosts}/versions`;
      const entries: [string, string][] = [];
      for (let i = 0; i < hosts; i++) {
        for (const field of ["current", "booted", "nextboot"]) {
          entries.push([
            `${zkNamespace}/host${i}.example.com/${field}`,
            revision(i, field[0] ?? ""),
          ]);
        }
      }
      await zk.putMany(entries);
      const zkConfig = await writeConfig(
        `[ogygia.zookeeper]\nendpoints = ["${zk.endpoint}"]\nnamespace = "${zkNamespace}"\ntimeout_seconds = 120\n`,
      );
      const zkEnv = { ...env, OGYGIA_CONFIG: zkConfig };
      const zkBefore = await zk.packetsReceived();
      timeOnce(ogygia, ["status", "--root", sys.root, "--json"], { env: zkEnv });
      const zkOgygiaRequests = (await zk.packetsReceived()) - zkBefore;
      const zkBefore2 = await zk.packetsReceived();
      timeOnce(process.execPath, [nodeByNode, zk.endpoint, zkNamespace]);
      const zkBaselineRequests = (await zk.packetsReceived()) - zkBefore2;
      const zkRounds = Math.max(3, Math.floor(ROUNDS / 2));
      const zkTimings = alternate(
        {
          nodeByNode: { command: process.execPath, args: [nodeByNode, zk.endpoint, zkNamespace] },
          ogygia: {
            command: ogygia,
            args: ["status", "--root", sys.root],
            options: { env: zkEnv },
          },
        },
        { rounds: zkRounds },
      );
      const zkBase = zkTimings.nodeByNode?.runs ?? [];
      const zkMine = zkTimings.ogygia?.runs ?? [];
      const zkMedian = zkTimings.ogygia?.median ?? NaN;
      console.log(
        `\nZooKeeper, ${hosts.toLocaleString("en")} hosts (${hosts * 3} nodes), ${zkRounds} rounds`,
      );
      printTable([
        ["command", "min", "median", "max", "requests", "ratio (min/median/max)"],
        [
          "node-by-node read (before multiRead)",
          ...minMedianMax(zkBase).map(formatMs),
          String(zkBaselineRequests),
          "1.00x",
        ],
        [
          "ogygia status",
          ...minMedianMax(zkMine).map(formatMs),
          String(zkOgygiaRequests),
          `${minMedianMax(zkMine.map((ms, i) => ms / (zkBase[i] ?? NaN)))
            .map((r) => `${r.toFixed(2)}x`)
            .join(
              " / ",
            )}${hosts === 10_000 ? ` (target < 1500 ms: ${zkMedian < 1500 ? "met" : "MISSED"})` : ""}`,
        ],
      ]);
    }
  } finally {
    await etcd.stop();
    await zk.stop();
    await sys.remove();
    await removeTempDirs();
  }
}

await main();
