/**
 * The daemon's CPU time per request, from /proc, rather than wall time: on
 * a shared 2-core host the wall-clock ratios of `iris-serve` swing by 2x
 * between runs, while the CPU a server spends on the same work does not.
 * Over the same closure as `iris-serve` (225 paths, 363 MiB of NARs):
 *
 *   1. narinfo: CPU per request over every narinfo, `NARINFO_PASSES` times,
 *      over one keep-alive connection, after two warm-up passes;
 *   2. first pass: CPU of a freshly started daemon over every NAR once (its
 *      small-NAR memory cache empty), after two narinfo passes as a client
 *      would make; beside it the NAR dump floor (`bench/nar-dump-floor.ts`,
 *      a fresh process each round: the simplest walk, no database, checks,
 *      hashing or cache).
 *
 * CPU is the sum over every thread of the process (`/proc/<pid>/task/<tid>/
 * schedstat`, nanoseconds; nginx: master and workers). Rounds alternate
 * between the servers; ratios are per round (paired) and shown min /
 * median / max. Beside irisd: `IRIS_BENCH_BEFORE` (another build: its
 * `dist` folder, its checkout, or its `dist/bundle/ogygia-irisd.js`), the
 * bare node:http floor (`startNodeFloor`, narinfo only) and nginx.
 * `IRIS_BENCH_PROFILE=1` runs our daemon with `--cpu-prof` in one more
 * narinfo pass and one more first pass (and the dump floor in one more
 * first pass), and prints where the profiles are.
 * Every irisd runs with the environment of the NixOS unit (`IRISD_UNIT_ENV`);
 * `IRIS_BENCH_BEFORE_ENV=none` runs the build before without it.
 *
 *   npm run bench -- iris-cpu
 *   IRIS_BENCH_BEFORE=/tmp/base/dist BENCH_ROUNDS=5 npm run bench -- iris-cpu
 */

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { startIrisd, stopAllIrisd, type IrisdProcess } from "../test/helpers/irisd.js";
import { hashPartOf } from "../test/helpers/nix.js";
import { announceBenchClosure, nixRun, signedStore } from "./lib-iris-closure.js";
import { KeepAliveClient } from "./lib-iris-http.js";
import {
  IRISD_UNIT_ENV,
  beforeBuildEnv,
  startNarDumpFloor,
  startNginx,
  startNodeFloor,
  type FloorServer,
} from "./lib-iris-servers.js";
import { median, printTable } from "./lib-timing.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const NARINFO_PASSES = Number(process.env.IRIS_BENCH_NARINFO_PASSES ?? 10);

/** CPU time of every thread of `pid`, in nanoseconds. */
function threadCpuNs(pid: number): number {
  let total = 0;
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const tid of tasks) {
    try {
      const first = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0];
      total += Number(first);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return total;
}

interface Target {
  name: string;
  port: number;
  /** Every process whose CPU counts. */
  pids(): number[];
}

function cpuNs(target: Target): number {
  return target.pids().reduce((sum, pid) => sum + threadCpuNs(pid), 0);
}

/** Every narinfo `passes` times over one connection. */
async function narinfos(port: number, hashes: readonly string[], passes: number): Promise<void> {
  const client = await KeepAliveClient.connect("127.0.0.1", port);
  try {
    for (let pass = 0; pass < passes; pass++) {
      for (const hash of hashes) {
        const res = await client.get(`/${hash}.narinfo`);
        if (res.status !== 200) throw new Error(`port ${port}: narinfo ${res.status}`);
      }
    }
  } finally {
    client.close();
  }
}

/** The NAR URLs the narinfos name. */
async function narUrls(port: number, hashes: readonly string[]): Promise<string[]> {
  const client = await KeepAliveClient.connect("127.0.0.1", port);
  try {
    const urls: string[] = [];
    for (const hash of hashes) {
      const res = await client.get(`/${hash}.narinfo`, { keepBody: true });
      const url = /^URL: (.*)$/m.exec(res.body?.toString("utf8") ?? "")?.[1];
      if (url === undefined) throw new Error(`port ${port}: ${hash}.narinfo has no URL`);
      urls.push(`/${url}`);
    }
    return urls;
  } finally {
    client.close();
  }
}

/** Every NAR once over one connection; the bytes received. */
async function nars(port: number, urls: readonly string[]): Promise<number> {
  const client = await KeepAliveClient.connect("127.0.0.1", port);
  try {
    let bytes = 0;
    for (const url of urls) {
      const res = await client.get(url);
      if (res.status !== 200) throw new Error(`port ${port}: ${url} is ${res.status}`);
      bytes += res.length;
    }
    return bytes;
  } finally {
    client.close();
  }
}

/** `IRIS_BENCH_BEFORE` as the daemon script it names. */
function beforeScript(): string | undefined {
  const value = process.env.IRIS_BENCH_BEFORE;
  if (value === undefined || value === "") return undefined;
  for (const candidate of [
    value,
    path.join(value, "bundle/ogygia-irisd.js"),
    path.join(value, "dist/bundle/ogygia-irisd.js"),
  ]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  throw new Error(`IRIS_BENCH_BEFORE=${value}: no dist/bundle/ogygia-irisd.js there`);
}

function ratios(ours: readonly number[], base: readonly number[]): string {
  const r = ours.map((v, i) => v / (base[i] ?? NaN)).sort((a, b) => a - b);
  const f = (v: number | undefined): string => (v ?? NaN).toFixed(2);
  return `${f(r[0])} / ${f(median(r))} / ${f(r.at(-1))}x`;
}

async function main(): Promise<void> {
  const closure = announceBenchClosure();
  const hashes = closure.paths.map(hashPartOf);
  const work = mkdtempSync(path.join(os.tmpdir(), "ogygia-bench-iris-cpu-"));
  const profileDir =
    process.env.IRIS_BENCH_PROFILE === "1"
      ? mkdtempSync(path.join(os.tmpdir(), "ogygia-iris-cpu-prof-"))
      : undefined;
  const daemons: {
    name: string;
    script?: string;
    env: Readonly<Record<string, string>>;
    process?: IrisdProcess;
  }[] = [{ name: "irisd", env: IRISD_UNIT_ENV }];
  const before = beforeScript();
  if (before !== undefined) {
    daemons.push({ name: "irisd-before", script: before, env: beforeBuildEnv() });
  }
  const stops: (() => Promise<unknown>)[] = [];
  for (const daemon of daemons) {
    const env = Object.entries(daemon.env).map(([k, v]) => `${k}=${v}`);
    console.log(
      `${daemon.name} runs with ${env.length > 0 ? env.join(" ") : "no extra environment"}`,
    );
  }
  try {
    const { root: storeRoot } = signedStore(work, closure.top, {
      dir: "store",
      keyName: "iris-cpu-bench-1",
    });
    const cacheDir = path.join(work, "file-cache");
    nixRun([
      "nix",
      "copy",
      "--from",
      storeRoot,
      "--to",
      `file://${cacheDir}?compression=none`,
      closure.top,
    ]);
    const start = async (
      daemon: (typeof daemons)[number],
      nodeArgs: string[] = [],
    ): Promise<Target> => {
      await daemon.process?.stop("SIGTERM");
      const proc = await startIrisd({
        storeRoot,
        logLevel: "info",
        script: daemon.script,
        nodeArgs,
        env: { ...daemon.env },
      });
      daemon.process = proc;
      return { name: daemon.name, port: proc.port, pids: () => [proc.pid] };
    };
    const nginx = await startNginx(cacheDir, path.join(work, "nginx"));
    stops.push(() => nginx.stop());
    const nginxTarget: Target = { name: "nginx", port: nginx.port, pids: () => nginx.pids() };
    // Each server's narinfos name its own NAR URLs.
    const urls: Record<string, string[]> = { nginx: await narUrls(nginx.port, hashes) };
    const floor = await startNodeFloor(708, cacheDir);
    stops.push(() => floor.stop());
    const floorTarget: Target = { name: "floor", port: floor.port, pids: () => [floor.pid] };
    const daemonTargets: Target[] = [];
    for (const daemon of daemons) {
      const target = await start(daemon);
      daemonTargets.push(target);
      urls[daemon.name] = await narUrls(target.port, hashes);
    }
    console.log(
      `nginx runs ${nginx.pids().length - 1} worker process(es) on ${os.cpus().length} CPUs; load: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );

    // 1. narinfo, steady state.
    const narinfoTargets = [...daemonTargets, floorTarget, nginxTarget];
    // Warm-up: V8 optimises the request path over the first thousand or so requests.
    for (const t of narinfoTargets) await narinfos(t.port, hashes, 5);
    const requests = hashes.length * NARINFO_PASSES;
    const perRequest: Record<string, number[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? narinfoTargets : [...narinfoTargets].reverse();
      for (const t of order) {
        const before = cpuNs(t);
        await narinfos(t.port, hashes, NARINFO_PASSES);
        (perRequest[t.name] ??= []).push((cpuNs(t) - before) / requests / 1000);
      }
    }
    console.log(
      `\n1. CPU per narinfo request (${requests} requests a round, one connection, ${ROUNDS} rounds)`,
    );
    const nginxNi = perRequest.nginx ?? [];
    const oursNi = perRequest.irisd ?? [];
    printTable([
      ["server", "µs per request (median)", "min / max", "ratio to irisd-before", "ratio to nginx"],
      ...narinfoTargets.map((t) => {
        const v = perRequest[t.name] ?? [];
        const sorted = [...v].sort((a, b) => a - b);
        return [
          t.name,
          median(v).toFixed(1),
          `${(sorted[0] ?? NaN).toFixed(1)} / ${(sorted.at(-1) ?? NaN).toFixed(1)}`,
          t.name === "irisd" && perRequest["irisd-before"] !== undefined
            ? ratios(oursNi, perRequest["irisd-before"])
            : "",
          ratios(v, nginxNi),
        ];
      }),
    ]);

    // 2. First pass from a fresh process; nginx as it is (its files in the page cache).
    // The NAR dump floor (a fresh process each round) serves irisd's URLs from the same store.
    const storeDir = path.join(storeRoot, "nix/store");
    let dumpFloor: FloorServer | undefined;
    stops.push(async () => dumpFloor?.stop());
    const startDumpFloor = async (): Promise<Target> => {
      await dumpFloor?.stop();
      const proc = await startNarDumpFloor(storeDir);
      dumpFloor = proc;
      return { name: "dump-floor", port: proc.port, pids: () => [proc.pid] };
    };
    urls["dump-floor"] = urls.irisd ?? [];
    const firstTargets = [...daemons.map((d) => d.name), "dump-floor", "nginx"];
    const firstCpu: Record<string, number[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? firstTargets : [...firstTargets].reverse();
      for (const name of order) {
        const daemon = daemons.find((d) => d.name === name);
        const t =
          daemon !== undefined
            ? await start(daemon)
            : name === "dump-floor"
              ? await startDumpFloor()
              : nginxTarget;
        await narinfos(t.port, hashes, 2);
        const before = cpuNs(t);
        const bytes = await nars(t.port, urls[name] ?? []);
        if (bytes !== closure.narBytes) throw new Error(`${name}: ${bytes} NAR bytes`);
        (firstCpu[name] ??= []).push((cpuNs(t) - before) / 1e6);
      }
    }
    console.log(`\n2. CPU over the first pass of every NAR (fresh daemon; ${ROUNDS} rounds)`);
    const nginxFp = firstCpu.nginx ?? [];
    printTable([
      [
        "server",
        "ms of CPU (median)",
        "min / max",
        "ratio to irisd-before",
        "ratio to nginx",
        "ratio to irisd",
      ],
      ...firstTargets.map((name) => {
        const v = firstCpu[name] ?? [];
        const sorted = [...v].sort((a, b) => a - b);
        return [
          name,
          median(v).toFixed(0),
          `${(sorted[0] ?? NaN).toFixed(0)} / ${(sorted.at(-1) ?? NaN).toFixed(0)}`,
          name === "irisd" && firstCpu["irisd-before"] !== undefined
            ? ratios(firstCpu.irisd ?? [], firstCpu["irisd-before"])
            : "",
          ratios(v, nginxFp),
          name === "irisd" ? "" : ratios(v, firstCpu.irisd ?? []),
        ];
      }),
    ]);

    const ours = daemons[0];
    if (profileDir !== undefined && ours !== undefined) {
      // One profiled process: a first pass, then narinfos in steady state.
      const prof = ["--cpu-prof", `--cpu-prof-dir=${profileDir}`];
      const first = await start(ours, [...prof, "--cpu-prof-name=first-pass.cpuprofile"]);
      await narinfos(first.port, hashes, 2);
      await nars(first.port, urls[ours.name] ?? []);
      await ours.process?.stop("SIGTERM");
      const steady = await start(ours, [...prof, "--cpu-prof-name=narinfo.cpuprofile"]);
      await narinfos(steady.port, hashes, 2 + NARINFO_PASSES);
      await ours.process?.stop("SIGTERM");
      ours.process = undefined;
      await dumpFloor?.stop();
      dumpFloor = await startNarDumpFloor(storeDir, [
        ...prof,
        "--cpu-prof-name=dump-floor-first-pass.cpuprofile",
      ]);
      await narinfos(dumpFloor.port, hashes, 2);
      await nars(dumpFloor.port, urls["dump-floor"]);
      await dumpFloor.stop();
      dumpFloor = undefined;
      console.log(`\nprofiles (open in Chrome's DevTools): ${profileDir}`);
      for (const file of readdirSync(profileDir)) console.log(`  ${path.join(profileDir, file)}`);
    }
    console.log(
      `\nload after: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
  } finally {
    for (const daemon of daemons) await daemon.process?.stop("SIGTERM");
    // Also removes the configuration folder each start wrote.
    await stopAllIrisd();
    for (const stop of stops) await stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
