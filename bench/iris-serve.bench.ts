/**
 * ogygia-irisd against nginx, in one run, over the same closure (225 paths,
 * ~380 MB: directories of small files and paths holding one large file):
 *
 *   (a) irisd serving a chroot store holding the closure, signed;
 *   (b) nginx (Debian's) serving the static tree that
 *       `nix copy --to 'file://DIR?compression=none'` writes from that store.
 *
 * Timed, rounds alternating between the servers so machine noise falls on
 * all; every ratio is taken per round (paired) and shown min / median / max:
 *   0. the first pass over every NAR from a freshly started irisd (its
 *      small-NAR memory cache empty), beside two references: the NAR dump
 *      floor (`bench/nar-dump-floor.ts`: a fresh node:http process dumping
 *      each path with the simplest walk; no database, checks, hashing or
 *      cache; its NARs checked against nginx's) and Nix's own dump of the
 *      same files (`nix-store --dump` of the store folder, one process,
 *      read through a pipe; also shown minus its start-up, timed as a dump
 *      of an empty file in the same round);
 *   1. every narinfo, sequentially over one keep-alive connection;
 *   2. every NAR, sequentially over one keep-alive connection;
 *   3. a real `nix copy --from http://...` of the closure into a fresh store;
 *   4. a wrk load run on narinfo (64 connections, 20 s) for each server,
 *      and for nginx with one worker process (`nginx-1w`): nginx's default
 *      runs one worker per CPU, irisd one event loop unless `[server]
 *      workers` says more: `irisd-2w` (`workers = 2`) is run beside it.
 * Beside them, the floor of any node:http server (`startNodeFloor`): a
 * fixed narinfo body, and NAR files read into pooled buffers and written
 * (no `sendfile` in Node), timed in the same rounds for 1, 2 and 4.
 * Targets: narinfo <= 1.2x nginx, NAR <= 1.1x, first pass <= 2x, wrk
 * throughput >= 0.8x. Also irisd's peak RSS. `IRIS_BENCH_BEFORE=<another
 * checkout>/dist/bundle/ogygia-irisd.js` runs that build beside ours;
 * `IRIS_BENCH_NICE=0` runs ours again with that `helper_thread_nice`;
 * `IRIS_BENCH_WORKERS=<n>` runs ours with `workers = n` (default 2; 1: not at all).
 * Every irisd runs with the environment of the NixOS unit (`IRISD_UNIT_ENV`);
 * `IRIS_BENCH_BEFORE_ENV=none` runs the build before without it.
 *
 *   npm run bench -- iris-serve
 *   BENCH_ROUNDS=3 IRIS_BENCH_WRK_SECONDS=5 npm run bench -- iris-serve   # quicker
 *   IRIS_BENCH_ONLY=wrk IRIS_BENCH_WRK_ROUNDS=7 BENCH_ROUNDS=7 npm run bench -- iris-serve  # wrk only
 *   IRIS_BENCH_ONLY=first-pass BENCH_ROUNDS=9 npm run bench -- iris-serve  # section 0 only
 */

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { narSizeOf } from "../src/nix/index.js";
import { startIrisd, stopAllIrisd, type IrisdProcess } from "../test/helpers/irisd.js";
import { hashPartOf } from "../test/helpers/nix.js";
import { announceBenchClosure, NIX_ENV, nixRun, signedStore } from "./lib-iris-closure.js";
import { KeepAliveClient } from "./lib-iris-http.js";
import {
  IRISD_UNIT_ENV,
  beforeBuildEnv,
  currentRss,
  peakRss,
  processCpuNs,
  startNginx,
  startNarDumpFloor,
  startNodeFloor,
  type FloorServer,
  type NginxServer,
} from "./lib-iris-servers.js";
import { runWrk, type WrkResult } from "./lib-iris-wrk.js";
import { formatMs, median, printTable } from "./lib-timing.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const COPY_ROUNDS = Math.max(1, Math.min(ROUNDS, Number(process.env.IRIS_BENCH_COPY_ROUNDS ?? 3)));
const NARINFO_PASSES = 10;
const WRK_SECONDS = Number(process.env.IRIS_BENCH_WRK_SECONDS ?? 20);
const WRK_CONNECTIONS = 64;
const WRK_ROUNDS = Math.max(1, Math.min(ROUNDS, Number(process.env.IRIS_BENCH_WRK_ROUNDS ?? 3)));
/** `IRIS_BENCH_ONLY=wrk`: only the wrk runs (and memory); sections 0 to 3 get no rounds. */
const ONLY_WRK = process.env.IRIS_BENCH_ONLY === "wrk";
/** `IRIS_BENCH_ONLY=first-pass`: only section 0 (the first pass, its floor and Nix's dump). */
const ONLY_FIRST = process.env.IRIS_BENCH_ONLY === "first-pass";
const PASS_ROUNDS = ONLY_WRK ? 0 : ROUNDS;

/** `pid` and its children (a primary's workers), from /proc. */
function withChildren(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .split(" ")
      .map(Number)
      .filter((n) => n > 0);
    return [pid, ...children];
  } catch {
    return [pid];
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

interface Server {
  name: string;
  url: string;
  port: number;
  narUrls: string[];
}

async function fetchNarUrls(server: Omit<Server, "narUrls">, hashes: string[]): Promise<string[]> {
  const client = await KeepAliveClient.connect("127.0.0.1", server.port);
  try {
    const urls: string[] = [];
    for (const hash of hashes) {
      const res = await client.get(`/${hash}.narinfo`, { keepBody: true });
      if (res.status !== 200) throw new Error(`${server.name}: ${hash}.narinfo is ${res.status}`);
      const url = /^URL: (.*)$/m.exec(res.body?.toString("utf8") ?? "")?.[1];
      if (url === undefined) throw new Error(`${server.name}: ${hash}.narinfo has no URL`);
      urls.push(`/${url}`);
    }
    return urls;
  } finally {
    client.close();
  }
}

/** The median narinfo size, for the floor server's body. */
async function medianNarinfoBytes(port: number, hashes: string[]): Promise<number> {
  const client = await KeepAliveClient.connect("127.0.0.1", port);
  try {
    const sizes: number[] = [];
    for (const hash of hashes) sizes.push((await client.get(`/${hash}.narinfo`)).length);
    return Math.round(median(sizes));
  } finally {
    client.close();
  }
}

/** Every narinfo, `passes` times, over one connection; ms. */
async function timeNarinfos(server: Server, hashes: string[], passes: number): Promise<number> {
  const client = await KeepAliveClient.connect("127.0.0.1", server.port);
  try {
    const started = performance.now();
    for (let pass = 0; pass < passes; pass++) {
      for (const hash of hashes) {
        const res = await client.get(`/${hash}.narinfo`);
        if (res.status !== 200) throw new Error(`${server.name}: narinfo ${res.status}`);
      }
    }
    return performance.now() - started;
  } finally {
    client.close();
  }
}

/** Wall time of `nix-store --dump <target>`, its output read through a pipe; ms and bytes. */
function timeNixDump(target: string): Promise<{ ms: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn("nix-store", ["--dump", target], {
      env: NIX_ENV,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let bytes = 0;
    child.stdout.on("data", (chunk: Buffer) => (bytes += chunk.length));
    child.once("error", reject);
    child.once("close", (code) => {
      if (code !== 0) reject(new Error(`nix-store --dump ${target} exited ${code ?? "?"}`));
      else resolve({ ms: performance.now() - started, bytes });
    });
  });
}

/** Every NAR of `floor` has nginx's bytes (SHA-256 of each body); throws at the first that differs. */
async function checkSameNars(floor: Server, nginx: Server): Promise<void> {
  const a = await KeepAliveClient.connect("127.0.0.1", floor.port);
  const b = await KeepAliveClient.connect("127.0.0.1", nginx.port);
  const digest = (body: Buffer | undefined): string =>
    createHash("sha256")
      .update(body ?? Buffer.alloc(0))
      .digest("hex");
  try {
    for (const [i, url] of floor.narUrls.entries()) {
      const ours = await a.get(url, { keepBody: true });
      const theirs = await b.get(nginx.narUrls[i] ?? "", { keepBody: true });
      if (ours.status !== 200 || digest(ours.body) !== digest(theirs.body)) {
        throw new Error(`${floor.name}: ${url} (${ours.status}) differs from nginx's NAR`);
      }
    }
  } finally {
    a.close();
    b.close();
  }
}

/** Every NAR over one connection; ms and bytes. */
async function timeNars(server: Server): Promise<{ ms: number; bytes: number }> {
  const client = await KeepAliveClient.connect("127.0.0.1", server.port);
  try {
    let bytes = 0;
    const started = performance.now();
    for (const url of server.narUrls) {
      const res = await client.get(url);
      if (res.status !== 200) throw new Error(`${server.name}: ${url} is ${res.status}`);
      bytes += res.length;
    }
    return { ms: performance.now() - started, bytes };
  } finally {
    client.close();
  }
}

function timeNixCopy(
  server: Server,
  top: string,
  publicKey: string,
  work: string,
  round: number,
): number {
  const target = path.join(work, `client-${server.name}-${round}`);
  const cache = path.join(work, `xdg-${server.name}-${round}`);
  const started = performance.now();
  nixRun(
    [
      "nix",
      "copy",
      "--from",
      server.url,
      "--to",
      target,
      top,
      "--option",
      "trusted-public-keys",
      publicKey,
      "--option",
      "narinfo-cache-negative-ttl",
      "0",
    ],
    { ...NIX_ENV, XDG_CACHE_HOME: cache },
  );
  const ms = performance.now() - started;
  rmSync(target, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  return ms;
}

function wrkRow(name: string, result: WrkResult): string[] {
  const errors = Object.values(result.errors).reduce((a, b) => a + b, 0);
  const l = result.latencyUs;
  return [
    name,
    result.requestsPerSecond.toFixed(0),
    `${(l.p50 / 1000).toFixed(2)} ms`,
    `${(l.p90 / 1000).toFixed(2)} ms`,
    `${(l.p99 / 1000).toFixed(2)} ms`,
    `${(l.p999 / 1000).toFixed(2)} ms`,
    `${(l.max / 1000).toFixed(2)} ms`,
    String(errors),
  ];
}

/** min / median / max of the per-round ratios `ours[i] / base[i]` (paired rounds). */
function ratios(ours: readonly number[], base: readonly number[]): string {
  const r = ours.map((v, i) => v / (base[i] ?? NaN)).sort((a, b) => a - b);
  if (r.length === 0) return "";
  const f = (v: number | undefined): string => (v ?? NaN).toFixed(2);
  return `${f(r[0])} / ${f(median(r))} / ${f(r.at(-1))}x`;
}

function medianRatio(ours: readonly number[], base: readonly number[]): number {
  return median(ours.map((v, i) => v / (base[i] ?? NaN)));
}

/** Runs `body` for every server, in alternating order from round to round. */
async function alternating<T extends { name: string }>(
  items: readonly T[],
  rounds: number,
  body: (item: T, round: number) => Promise<number>,
): Promise<Record<string, number[]>> {
  const out: Record<string, number[]> = {};
  for (const item of items) out[item.name] = [];
  for (let round = 0; round < rounds; round++) {
    for (const item of round % 2 === 0 ? items : [...items].reverse()) {
      out[item.name]?.push(await body(item, round));
    }
  }
  return out;
}

async function main(): Promise<void> {
  const closure = announceBenchClosure();
  const hashes = closure.paths.map(hashPartOf);
  const work = mkdtempSync(path.join(os.tmpdir(), "ogygia-bench-iris-run-"));
  // IRIS_BENCH_BEFORE: another build's bundle (dist/bundle/ogygia-irisd.js), run beside ours.
  const beforeScript = process.env.IRIS_BENCH_BEFORE;
  const daemons: {
    name: string;
    script?: string;
    nice?: number;
    env: Readonly<Record<string, string>>;
    workers?: number;
    process?: IrisdProcess;
  }[] = [{ name: "irisd", env: IRISD_UNIT_ENV }];
  // IRIS_BENCH_WORKERS=<n>: our build with `[server] workers = n` beside (default 2; 1: none).
  const workers = Number(process.env.IRIS_BENCH_WORKERS ?? 2);
  if (workers > 1) daemons.push({ name: `irisd-${workers}w`, workers, env: IRISD_UNIT_ENV });
  if (beforeScript !== undefined && beforeScript !== "") {
    daemons.push({ name: "irisd-before", script: beforeScript, env: beforeBuildEnv() });
  }
  // IRIS_BENCH_NICE=<n>: our build again with `helper_thread_nice = n`, beside the default.
  const nice = process.env.IRIS_BENCH_NICE;
  if (nice !== undefined && nice !== "") {
    daemons.push({ name: `irisd-nice${nice}`, nice: Number(nice), env: IRISD_UNIT_ENV });
  }
  for (const daemon of daemons) {
    const env = Object.entries(daemon.env).map(([k, v]) => `${k}=${v}`);
    console.log(
      `${daemon.name} runs with ${env.length > 0 ? env.join(" ") : "no extra environment"}`,
    );
  }
  let nginx: NginxServer | undefined;
  let nginxOne: NginxServer | undefined;
  let floor: FloorServer | undefined;
  let dumpFloor: FloorServer | undefined;
  try {
    // The served store: a chroot store with the closure, signed by a fresh key.
    const { root: storeRoot, publicKey } = signedStore(work, closure.top, {
      dir: "store",
      keyName: "iris-bench-1",
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

    const startDaemon = async (daemon: (typeof daemons)[number]): Promise<Server> => {
      await daemon.process?.stop("SIGTERM");
      const proc = await startIrisd({
        storeRoot,
        logLevel: "info",
        script: daemon.script,
        helperThreadNice: daemon.nice,
        env: { ...daemon.env },
        workers: daemon.workers,
      });
      daemon.process = proc;
      const base = { name: daemon.name, url: proc.url, port: proc.port };
      return { ...base, narUrls: await fetchNarUrls(base, hashes) };
    };
    nginx = await startNginx(cacheDir, path.join(work, "nginx"));
    const nginxBase = { name: "nginx", url: nginx.url, port: nginx.port };
    const nginxServer: Server = { ...nginxBase, narUrls: await fetchNarUrls(nginxBase, hashes) };
    let servers: Server[] = [];
    for (const daemon of daemons) servers.push(await startDaemon(daemon));
    servers.push(nginxServer);
    const names = servers.map((s) => s.name);
    const first = servers[0];
    if (first === undefined) throw new Error("no server");
    const narinfoBytes = await medianNarinfoBytes(first.port, hashes);

    // The first-pass floor serves irisd's URLs (`/nar/<hash part>-...`) from the same store.
    const storeDir = path.join(storeRoot, "nix/store");
    const floorServer0 = (proc: FloorServer): Server => ({
      name: "dump-floor",
      url: proc.url,
      port: proc.port,
      narUrls: first.narUrls,
    });
    dumpFloor = await startNarDumpFloor(storeDir);
    if (PASS_ROUNDS > 0) await checkSameNars(floorServer0(dumpFloor), nginxServer);
    // Nix's own dump of the same files: one process over the store folder (one NAR holding
    // every path; 225 processes would measure Nix's start-up), its start-up timed beside it.
    const nixDumpBytes = narSizeOf(storeDir);
    const emptyFile = path.join(work, "empty");
    writeFileSync(emptyFile, "");
    const nixStartMs: number[] = [];

    // First pass over every NAR: each daemon (and the floor) restarted before its pass, so
    // its small-NAR memory cache is empty; the files are in the page cache for all.
    console.log(`\n0. first pass: every NAR once from a fresh process (${ROUNDS} rounds)`);
    const firstPassItems = [...servers, { name: "dump-floor" }, { name: "nix-dump" }];
    const firstPass = await alternating(firstPassItems, PASS_ROUNDS, async (item) => {
      if (item.name === "nix-dump") {
        nixStartMs.push((await timeNixDump(emptyFile)).ms);
        const { ms, bytes } = await timeNixDump(storeDir);
        if (bytes !== nixDumpBytes) {
          throw new Error(`nix-store --dump wrote ${bytes} bytes, expected ${nixDumpBytes}`);
        }
        return ms;
      }
      let target: Server;
      if (item.name === "dump-floor") {
        await dumpFloor?.stop();
        dumpFloor = await startNarDumpFloor(storeDir);
        target = floorServer0(dumpFloor);
      } else {
        target = servers.find((s) => s.name === item.name) ?? nginxServer;
        const daemon = daemons.find((d) => d.name === item.name);
        if (daemon !== undefined) {
          const fresh = await startDaemon(daemon);
          servers = servers.map((s) => (s.name === item.name ? fresh : s));
          target = fresh;
        }
      }
      await timeNarinfos(target, hashes, 2);
      const { ms, bytes } = await timeNars(target);
      if (bytes !== closure.narBytes) {
        throw new Error(`${item.name} sent ${bytes} NAR bytes, expected ${closure.narBytes}`);
      }
      return ms;
    });
    await dumpFloor.stop();
    dumpFloor = undefined;
    const nixDump = firstPass["nix-dump"] ?? [];
    firstPass["nix-net"] = nixDump.map((ms, i) => ms - (nixStartMs[i] ?? NaN));
    const nginxFirst = firstPass.nginx ?? [];
    const irisdFirst = firstPass.irisd ?? [];
    const rate = (ms: number): string =>
      `${(closure.narBytes / 1024 / 1024 / (ms / 1000)).toFixed(0)} MiB/s`;
    const firstRows: [string, string][] = [
      ...names.map((n): [string, string] => [n, n === "nginx" ? n : `${n} (fresh process)`]),
      ["dump-floor", "NAR dump floor (fresh node:http process, bench/nar-dump-floor.ts)"],
      ["nix-dump", "nix-store --dump of the store folder (one process, piped)"],
      ["nix-net", `  the same, minus its start-up (${formatMs(median(nixStartMs))})`],
    ];
    printTable([
      ["first pass", "median", "throughput", "ratio to nginx", "ratio to irisd"],
      ...firstRows.map(([key, label]) => [
        label,
        formatMs(median(firstPass[key] ?? [])),
        rate(median(firstPass[key] ?? [])),
        ratios(firstPass[key] ?? [], nginxFirst),
        key === "irisd" ? "" : ratios(firstPass[key] ?? [], irisdFirst),
      ]),
    ]);
    console.log(
      `load: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(" ")}`,
    );
    const firstBefore = firstPass["irisd-before"];
    if (firstBefore !== undefined) {
      console.log(`irisd / irisd-before, first pass (paired): ${ratios(irisdFirst, firstBefore)}`);
    }
    if (ONLY_FIRST) {
      printTable([
        ["figure", "server", "ratio to nginx", "target", "met (median)"],
        ...names
          .filter((n) => n !== "nginx")
          .map((n) => [
            "NAR, first pass",
            n,
            ratios(firstPass[n] ?? [], nginxFirst),
            "<= 2x",
            medianRatio(firstPass[n] ?? [], nginxFirst) <= 2 ? "yes" : "NO",
          ]),
      ]);
      return;
    }
    floor = await startNodeFloor(narinfoBytes, cacheDir);
    const floorServer: Server = {
      name: "floor",
      url: floor.url,
      port: floor.port,
      narUrls: nginxServer.narUrls,
    };
    await timeNarinfos(floorServer, hashes, 2);

    console.log(
      `\n1. narinfo: ${hashes.length} x ${NARINFO_PASSES} requests over one keep-alive connection (${ROUNDS} rounds)`,
    );
    const narinfoMs = await alternating([...servers, floorServer], PASS_ROUNDS, (server) =>
      timeNarinfos(server, hashes, NARINFO_PASSES),
    );
    const requests = hashes.length * NARINFO_PASSES;
    const perRequest = (ms: number): string => `${((ms * 1000) / requests).toFixed(1)} us`;
    const nginxNi = narinfoMs.nginx ?? [];
    printTable([
      ["server", "all narinfos (median)", "per request", "ratio to nginx min / median / max"],
      ...[...names, "floor"].map((name) => [
        name === "floor" ? `node:http floor (fixed ${narinfoBytes}-byte body)` : name,
        formatMs(median(narinfoMs[name] ?? [])),
        perRequest(median(narinfoMs[name] ?? [])),
        ratios(narinfoMs[name] ?? [], nginxNi),
      ]),
    ]);

    console.log(
      `\n2. NAR: all ${hashes.length} NARs (${mb(closure.narBytes)}) over one keep-alive connection (${ROUNDS} rounds)`,
    );
    const narMs = await alternating([...servers, floorServer], PASS_ROUNDS, async (server) => {
      const { ms, bytes } = await timeNars(server);
      if (bytes !== closure.narBytes) {
        throw new Error(`${server.name} sent ${bytes} NAR bytes, expected ${closure.narBytes}`);
      }
      return ms;
    });
    const nginxNar = narMs.nginx ?? [];
    printTable([
      ["server", "all NARs (median)", "throughput", "ratio to nginx min / median / max"],
      ...[...names, "floor"].map((name) => [
        name === "floor" ? "node:http floor (NAR files read into pooled buffers)" : name,
        formatMs(median(narMs[name] ?? [])),
        rate(median(narMs[name] ?? [])),
        ratios(narMs[name] ?? [], nginxNar),
      ]),
    ]);

    console.log(
      `\n3. nix copy --from http://... of the closure into a fresh store (${COPY_ROUNDS} rounds)`,
    );
    const copyMs = await alternating(servers, ONLY_WRK ? 0 : COPY_ROUNDS, (server, round) =>
      Promise.resolve(timeNixCopy(server, closure.top, publicKey, work, round)),
    );
    printTable([
      ["server", "nix copy (median)", "ratio to nginx min / median / max"],
      ...names.map((name) => [
        name,
        formatMs(median(copyMs[name] ?? [])),
        ratios(copyMs[name] ?? [], copyMs.nginx ?? []),
      ]),
    ]);

    console.log(
      `\n4. wrk on narinfo: ${WRK_CONNECTIONS} connections, ${WRK_SECONDS} s, 2 threads, rotating over ${hashes.length} hashes (${WRK_ROUNDS} rounds)`,
    );
    const wrk: Record<string, WrkResult[]> = {};
    nginxOne = await startNginx(cacheDir, path.join(work, "nginx-1w"), { workers: 1 });
    const nginxOneServer: Server = {
      name: "nginx-1w",
      url: nginxOne.url,
      port: nginxOne.port,
      narUrls: [],
    };
    const wrkServers = [...servers, nginxOneServer, floorServer];
    // Every process of a server: an irisd's workers, nginx's master and workers.
    const pidsOf = (name: string): number[] => {
      const daemon = daemons.find((d) => d.name === name);
      if (daemon !== undefined) return withChildren(daemon.process?.pid ?? -1);
      if (name === "nginx") return nginx?.pids() ?? [];
      if (name === "nginx-1w") return nginxOne?.pids() ?? [];
      return floor === undefined ? [] : [floor.pid];
    };
    const cpuPerRequest: Record<string, number[]> = {};
    // Without sections 0 to 3 nothing has warmed the servers up: 3 s of wrk each, not counted.
    if (ONLY_WRK) {
      for (const server of wrkServers) {
        runWrk({
          baseUrl: server.url,
          hashParts: hashes,
          workDir: work,
          connections: WRK_CONNECTIONS,
          seconds: 3,
          threads: 2,
        });
      }
    }
    const wrkRps = await alternating(wrkServers, WRK_ROUNDS, (server) => {
      const pids = pidsOf(server.name);
      const cpuBefore = processCpuNs(pids);
      const result = runWrk({
        baseUrl: server.url,
        hashParts: hashes,
        workDir: work,
        connections: WRK_CONNECTIONS,
        seconds: WRK_SECONDS,
        threads: 2,
      });
      (wrk[server.name] ??= []).push(result);
      (cpuPerRequest[server.name] ??= []).push(
        (processCpuNs(pids) - cpuBefore) / 1000 / Math.max(1, result.requests),
      );
      return Promise.resolve(result.requestsPerSecond);
    });
    printTable([
      ["server (last round)", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors"],
      ...[...names, "nginx-1w", "floor"].flatMap((name) => {
        const last = wrk[name]?.at(-1);
        return last === undefined
          ? []
          : [wrkRow(name === "floor" ? "node:http floor" : name, last)];
      }),
    ]);
    for (const name of [...names, "nginx-1w", "floor"]) {
      const rounds = (wrkRps[name] ?? []).map((v) => Math.round(v)).join(" ");
      console.log(`${name} requests/s by round: ${rounds}`);
    }
    for (const name of [...names, "nginx-1w", "floor"]) {
      const cpu = cpuPerRequest[name] ?? [];
      console.log(
        `${name} server CPU per request under wrk: median ${median(cpu).toFixed(1)} us (${cpu.map((v) => v.toFixed(1)).join(" ")}); to nginx ${ratios(cpu, cpuPerRequest.nginx ?? [])}`,
      );
    }
    for (const name of [...names, "nginx-1w", "floor"]) {
      if (name === "nginx") continue;
      console.log(
        `${name}/nginx throughput (higher is better): ${ratios(wrkRps[name] ?? [], wrkRps.nginx ?? [])}`,
      );
    }
    for (const name of [...names, "floor"]) {
      if (name === "nginx") continue;
      console.log(
        `${name}/nginx-1w (one worker, like with like): ${ratios(wrkRps[name] ?? [], wrkRps["nginx-1w"] ?? [])}`,
      );
    }

    console.log("\n5. memory");
    const nginxRss = nginx.pids().reduce((sum, pid) => sum + currentRss(pid), 0);
    printTable([
      ["process", "peak RSS (VmHWM)", "RSS now"],
      ...daemons.map((d) => {
        // With workers: the primary and its workers (peak: the sum of each one's peak).
        const pids = withChildren(d.process?.pid ?? -1);
        return [
          d.workers === undefined ? d.name : `${d.name} (primary + workers)`,
          mb(pids.reduce((sum, pid) => sum + peakRss(pid), 0)),
          mb(pids.reduce((sum, pid) => sum + currentRss(pid), 0)),
        ];
      }),
      ["nginx (master + workers)", "", mb(nginxRss)],
    ]);

    console.log("\nSummary (ratio to nginx, min / median / max over paired rounds)");
    const rows: string[][] = [["figure", "server", "ratio", "target", "met (median)"]];
    for (const name of names.filter((n) => n !== "nginx")) {
      const met = (ok: boolean): string => (ok ? "yes" : "NO");
      const ni = narinfoMs[name] ?? [];
      const nar = narMs[name] ?? [];
      const fp = firstPass[name] ?? [];
      const rps = wrkRps[name] ?? [];
      rows.push(
        [
          "narinfo, one connection",
          name,
          ratios(ni, nginxNi),
          "<= 1.2x",
          met(medianRatio(ni, nginxNi) <= 1.2),
        ],
        [
          "NAR, one connection",
          name,
          ratios(nar, nginxNar),
          "<= 1.1x",
          met(medianRatio(nar, nginxNar) <= 1.1),
        ],
        [
          "NAR, first pass",
          name,
          ratios(fp, nginxFirst),
          "<= 2x",
          met(medianRatio(fp, nginxFirst) <= 2),
        ],
        [
          "wrk narinfo req/s",
          name,
          ratios(rps, wrkRps.nginx ?? []),
          ">= 0.8x",
          met(medianRatio(rps, wrkRps.nginx ?? []) >= 0.8),
        ],
      );
    }
    printTable(rows);
    for (const daemon of daemons) {
      const warnings = daemon.process?.logs().filter((l) => l.level >= 40) ?? [];
      if (warnings.length > 0)
        console.log(`${daemon.name} logged ${warnings.length} warnings or errors`);
    }
  } finally {
    for (const daemon of daemons) await daemon.process?.stop("SIGTERM");
    // Also removes the configuration folder each start wrote.
    await stopAllIrisd();
    await nginx?.stop();
    await nginxOne?.stop();
    await floor?.stop();
    await dumpFloor?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
