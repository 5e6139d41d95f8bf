/**
 * ogygia-irisd against nginx, in one run, over the same closure (225 paths,
 * ~380 MB: directories of small files and paths holding one large file):
 *
 *   (a) irisd serving a chroot store holding the closure, signed;
 *   (b) nginx (Debian's) serving the static tree that
 *       `nix copy --to 'file://DIR?compression=none'` writes from that store.
 *
 * Timed, rounds alternating between the two so machine noise falls on both:
 *   1. every narinfo, sequentially over one keep-alive connection;
 *   2. every NAR, sequentially over one keep-alive connection;
 *   3. a real `nix copy --from http://...` of the closure into a fresh store;
 *   4. a wrk load run on narinfo (64 connections, 20 s) for each server.
 * Targets: narinfo <= 1.3x nginx, NAR <= 1.5x nginx. Also irisd's peak RSS.
 *
 *   npm run bench -- iris
 *   BENCH_ROUNDS=3 IRIS_BENCH_WRK_SECONDS=5 npm run bench -- iris   # quicker
 */

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { startIrisd, type IrisdProcess } from "../test/helpers/irisd.js";
import { hashPartOf } from "../test/helpers/nix.js";
import { announceBenchClosure, NIX_ENV, nixRun, signedStore } from "./lib-iris-closure.js";
import { KeepAliveClient } from "./lib-iris-http.js";
import {
  currentRss,
  peakRss,
  startNginx,
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

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function ratio(ours: number, base: number): string {
  return `${(ours / base).toFixed(2)}x`;
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

async function main(): Promise<void> {
  const closure = announceBenchClosure();
  const hashes = closure.paths.map(hashPartOf);
  const work = mkdtempSync(path.join(os.tmpdir(), "ogygia-bench-iris-run-"));
  let irisd: IrisdProcess | undefined;
  let nginx: NginxServer | undefined;
  let floor: FloorServer | undefined;
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

    irisd = await startIrisd({ storeRoot, logLevel: "info" });
    nginx = await startNginx(cacheDir, path.join(work, "nginx"));
    const servers: Server[] = [];
    for (const [name, url, port] of [
      ["irisd", irisd.url, irisd.port],
      ["nginx", nginx.url, nginx.port],
    ] as const) {
      servers.push({ name, url, port, narUrls: await fetchNarUrls({ name, url, port }, hashes) });
    }
    const narinfoBytes = await medianNarinfoBytes(irisd.port, hashes);

    // First pass over every NAR: irisd's small-NAR memory cache is empty (both
    // servers' files are in the page cache: they were just written).
    const firstPass: Record<string, number> = {};
    for (const server of servers) {
      await timeNarinfos(server, hashes, 2);
      firstPass[server.name] = (await timeNars(server)).ms;
    }
    floor = await startNodeFloor(narinfoBytes);
    const floorServer: Server = { name: "floor", url: floor.url, port: floor.port, narUrls: [] };
    await timeNarinfos(floorServer, hashes, 2);

    console.log(
      `\n1. narinfo: ${hashes.length} x ${NARINFO_PASSES} requests over one keep-alive connection (${ROUNDS} rounds, medians)`,
    );
    const narinfoMs: Record<string, number[]> = { irisd: [], nginx: [], floor: [] };
    const narinfoServers = [...servers, floorServer];
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of round % 2 === 0 ? narinfoServers : [...narinfoServers].reverse()) {
        narinfoMs[server.name]?.push(await timeNarinfos(server, hashes, NARINFO_PASSES));
      }
    }
    const requests = hashes.length * NARINFO_PASSES;
    const niOurs = median(narinfoMs.irisd ?? []);
    const niBase = median(narinfoMs.nginx ?? []);
    const niFloor = median(narinfoMs.floor ?? []);
    const perRequest = (ms: number): string => `${((ms * 1000) / requests).toFixed(1)} us`;
    printTable([
      ["server", "all narinfos", "per request", "ratio", "target"],
      ["nginx", formatMs(niBase), perRequest(niBase), "1.00x", ""],
      [
        `node:http floor (fixed ${narinfoBytes}-byte body)`,
        formatMs(niFloor),
        perRequest(niFloor),
        ratio(niFloor, niBase),
        "",
      ],
      ["irisd", formatMs(niOurs), perRequest(niOurs), ratio(niOurs, niBase), "<= 1.3x"],
    ]);

    console.log(
      `\n2. NAR: all ${hashes.length} NARs (${mb(closure.narBytes)}) over one keep-alive connection (${ROUNDS} rounds, medians)`,
    );
    const narMs: Record<string, number[]> = { irisd: [], nginx: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const server of round % 2 === 0 ? servers : [...servers].reverse()) {
        const { ms, bytes } = await timeNars(server);
        if (bytes !== closure.narBytes) {
          throw new Error(`${server.name} sent ${bytes} NAR bytes, expected ${closure.narBytes}`);
        }
        narMs[server.name]?.push(ms);
      }
    }
    const narOurs = median(narMs.irisd ?? []);
    const narBase = median(narMs.nginx ?? []);
    const rate = (ms: number): string =>
      `${(closure.narBytes / 1024 / 1024 / (ms / 1000)).toFixed(0)} MiB/s`;
    const coldOurs = firstPass.irisd ?? NaN;
    const coldBase = firstPass.nginx ?? NaN;
    printTable([
      ["server", "all NARs", "throughput", "ratio", "target"],
      ["nginx", formatMs(narBase), rate(narBase), "1.00x", ""],
      ["irisd", formatMs(narOurs), rate(narOurs), ratio(narOurs, narBase), "<= 1.5x"],
      ["nginx, first pass", formatMs(coldBase), rate(coldBase), "1.00x", ""],
      [
        "irisd, first pass (small-NAR memory cache empty)",
        formatMs(coldOurs),
        rate(coldOurs),
        ratio(coldOurs, coldBase),
        "",
      ],
    ]);

    console.log(
      `\n3. nix copy --from http://... of the closure into a fresh store (${COPY_ROUNDS} rounds, medians)`,
    );
    const copyMs: Record<string, number[]> = { irisd: [], nginx: [] };
    for (let round = 0; round < COPY_ROUNDS; round++) {
      for (const server of round % 2 === 0 ? servers : [...servers].reverse()) {
        copyMs[server.name]?.push(timeNixCopy(server, closure.top, publicKey, work, round));
      }
    }
    const copyOurs = median(copyMs.irisd ?? []);
    const copyBase = median(copyMs.nginx ?? []);
    printTable([
      ["server", "nix copy", "ratio"],
      ["nginx", formatMs(copyBase), "1.00x"],
      ["irisd", formatMs(copyOurs), ratio(copyOurs, copyBase)],
    ]);

    console.log(
      `\n4. wrk on narinfo: ${WRK_CONNECTIONS} connections, ${WRK_SECONDS} s, 2 threads, rotating over ${hashes.length} hashes`,
    );
    const wrk: Record<string, WrkResult> = {};
    for (const server of servers) {
      wrk[server.name] = runWrk({
        baseUrl: server.url,
        hashParts: hashes,
        workDir: work,
        connections: WRK_CONNECTIONS,
        seconds: WRK_SECONDS,
        threads: 2,
      });
    }
    const wrkBase = wrk.nginx;
    const wrkOurs = wrk.irisd;
    if (wrkBase !== undefined && wrkOurs !== undefined) {
      printTable([
        ["server", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors"],
        wrkRow("nginx", wrkBase),
        wrkRow("irisd", wrkOurs),
      ]);
      console.log(
        `irisd/nginx throughput: ${(wrkOurs.requestsPerSecond / wrkBase.requestsPerSecond).toFixed(2)}x`,
      );
    }

    console.log("\n5. memory");
    const nginxRss = nginx.pids().reduce((sum, pid) => sum + currentRss(pid), 0);
    printTable([
      ["process", "peak RSS (VmHWM)", "RSS now"],
      ["irisd", mb(peakRss(irisd.pid)), mb(currentRss(irisd.pid))],
      ["nginx (master + workers)", "", mb(nginxRss)],
    ]);

    console.log("\nSummary (irisd/nginx; lower is better)");
    printTable([
      ["figure", "irisd", "nginx", "ratio", "target", "met"],
      [
        "narinfo, one connection",
        formatMs(niOurs),
        formatMs(niBase),
        ratio(niOurs, niBase),
        "<= 1.3x",
        niOurs / niBase <= 1.3 ? "yes" : "NO",
      ],
      [
        "NAR, one connection",
        formatMs(narOurs),
        formatMs(narBase),
        ratio(narOurs, narBase),
        "<= 1.5x",
        narOurs / narBase <= 1.5 ? "yes" : "NO",
      ],
      ["nix copy", formatMs(copyOurs), formatMs(copyBase), ratio(copyOurs, copyBase), "", ""],
    ]);
    const aborted = irisd.logs().filter((l) => l.level >= 40);
    if (aborted.length > 0) console.log(`irisd logged ${aborted.length} warnings or errors`);
  } finally {
    await irisd?.stop("SIGTERM");
    await nginx?.stop();
    await floor?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
