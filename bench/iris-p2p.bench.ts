/**
 * ogygia-irisd peer to peer, figures beside their baselines in one run:
 *
 *   1. `nix copy --from http://C` of the benchmark closure (225 paths,
 *      ~380 MB of NARs) where C holds nothing and fetches everything from
 *      its peer B (looking up, verifying, caching), against `nix copy`
 *      straight from B's irisd. Target: C at most 1.1x B, C's CPU at most
 *      2x B's (ratios taken per round, min / median / max shown).
 *      `IRIS_BENCH_BEFORE=<bundle>` adds a C running another build,
 *      `IRIS_BENCH_NICE=<n>` one with `helper_thread_nice = n`,
 *      `IRIS_BENCH_WORKERS=<n>` one with `[server] workers = n` (what its
 *      workers forward to the primary costs). Beside them: the
 *      same copy through a minimal forwarding process (no verification, no
 *      cache: the floor of any intermediate process here) and from C's warm
 *      cache. Rounds alternate; C restarts with an empty cache each round.
 *      CPU seconds per copy for each server. `IRIS_BENCH_CPU_PROF=<dir>`
 *      runs every C with `node --cpu-prof` into that folder (one profile per
 *      C process: warm-up, each round's copy and its warm-cache copy).
 *   2. Time to a negative answer (a path nobody has) from C with B as its
 *      peer: the first request (B's filter older than 2 s: one conditional
 *      revalidation), then repeated ones (no request to B), against B's own
 *      404 from its store; and with a blackhole peer added: the very first
 *      request (the blackhole is asked directly, 1.5 s timeout) and later
 *      ones (it is skipped while it backs off).
 *
 *   npm run bench -- p2p
 *   BENCH_ROUNDS=1 npm run bench -- p2p      # quicker
 */

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { encodeNix32 } from "../src/nix/index.js";
import { startIrisd, type IrisdProcess } from "../test/helpers/irisd.js";
import { announceBenchClosure, NIX_ENV, signedStore } from "./lib-iris-closure.js";
import { KeepAliveClient } from "./lib-iris-http.js";
import { emptyStore, startC } from "./lib-iris-p2p-nodes.js";
import { formatMs, median, percentile, printTable } from "./lib-timing.js";

const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
const NEGATIVE_SAMPLES = 5;
const REPEATED = 200;

function ms(value: number): string {
  return value < 1 ? `${(value * 1000).toFixed(0)} us` : formatMs(value);
}

function sleep(delay: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, delay));
}

/** `nix copy --from <from>` of `top` into a fresh store; wall ms. (Asynchronous: the daemons' logs keep flowing.) */
async function nixCopy(
  from: string,
  top: string,
  publicKey: string,
  work: string,
  name: string,
): Promise<number> {
  const target = path.join(work, `client-${name}`);
  const cache = path.join(work, `xdg-${name}`);
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      "nix",
      ["copy", "--from", from, "--to", target, top, "--option", "trusted-public-keys", publicKey],
      { env: { ...NIX_ENV, XDG_CACHE_HOME: cache }, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-8192);
    });
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`nix copy --from ${from} failed (${code}):\n${stderr}`));
    });
  });
  const elapsed = performance.now() - started;
  rmSync(target, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  return elapsed;
}

/** User + system CPU seconds of a daemon, from its /metrics. */
async function daemonCpu(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (/^irisd_process_cpu_(user|system)_seconds_total /.test(line)) {
      total += Number(line.split(" ")[1]);
    }
  }
  return total;
}

interface Floor {
  url: string;
  cpu(): Promise<number>;
  child: ChildProcess;
}

async function startFloor(upstream: string): Promise<Floor> {
  const script = fileURLToPath(new URL("./lib-iris-p2p-floor.js", import.meta.url));
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, UPSTREAM: upstream },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once("data", (chunk: Buffer) => {
      resolve((JSON.parse(chunk.toString("utf8")) as { port: number }).port);
    });
    child.once("exit", () => {
      reject(new Error("the floor proxy exited"));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    child,
    async cpu() {
      const usage = (await (await fetch(`${url}/.cpu`)).json()) as { user: number; system: number };
      return (usage.user + usage.system) / 1e6;
    },
  };
}

/** Waits (bounded) until C's cache holds `count` entries and no download is in progress. */
async function cacheSettled(dir: string, count: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const names = readdirSync(dir);
    const entries = names.filter((n) => n.endsWith(".entry")).length;
    if (entries >= count && !names.some((n) => n.startsWith(".tmp-"))) return;
    await sleep(100);
  }
  throw new Error(`C's cache did not settle at ${count} entries`);
}

async function timed404(client: KeepAliveClient): Promise<number> {
  const hash = encodeNix32(randomBytes(20));
  const started = performance.now();
  const res = await client.get(`/${hash}.narinfo`);
  const elapsed = performance.now() - started;
  if (res.status !== 404) throw new Error(`expected 404, got ${res.status}`);
  return elapsed;
}

interface NegativeFigures {
  first: number[];
  repeated: number[];
}

/** `samples` times: wait `waitMs` (filters go stale), time one 404, then `REPEATED` more. */
async function negatives(port: number, samples: number, waitMs: number): Promise<NegativeFigures> {
  const client = await KeepAliveClient.connect("127.0.0.1", port);
  const figures: NegativeFigures = { first: [], repeated: [] };
  try {
    for (let i = 0; i < samples; i++) {
      await sleep(waitMs);
      figures.first.push(await timed404(client));
      for (let j = 0; j < REPEATED; j++) figures.repeated.push(await timed404(client));
    }
  } finally {
    client.close();
  }
  return figures;
}

/** A TCP server that accepts connections and never answers. */
async function blackhole(): Promise<{ url: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

async function main(): Promise<void> {
  const closure = announceBenchClosure();
  const work = mkdtempSync(path.join(os.tmpdir(), "ogygia-bench-iris-p2p-"));
  const cacheDir = path.join(work, "cache-c");
  let nodeB: IrisdProcess | undefined;
  let nodeC: IrisdProcess | undefined;
  let floor: Floor | undefined;
  let hole: Awaited<ReturnType<typeof blackhole>> | undefined;
  try {
    const storeB = signedStore(work, closure.top, { dir: "store-b", keyName: "iris-p2p-bench-1" });
    const rootC = emptyStore(work, "store-c");
    const b = await startIrisd({ storeRoot: storeB.root, logLevel: "info" });
    nodeB = b;
    floor = await startFloor(b.url);
    const key = storeB.publicKey;
    const profileText = process.env.IRIS_BENCH_CPU_PROF;
    const profileDir = profileText !== undefined && profileText !== "" ? profileText : undefined;
    const freshC = async (
      peers: string[] = [b.url],
      variant: { script?: string; helperThreadNice?: number; workers?: number } = {},
    ): Promise<IrisdProcess> => {
      await nodeC?.stop();
      nodeC = await startC({
        storeRoot: rootC,
        peers,
        publicKey: key,
        cacheDir,
        ...variant,
        ...(profileDir !== undefined
          ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] }
          : {}),
      });
      return nodeC;
    };
    // IRIS_BENCH_BEFORE: another build's bundle (dist/bundle/ogygia-irisd.js) as C, beside ours.
    const before = process.env.IRIS_BENCH_BEFORE;
    const withBefore = before !== undefined && before !== "";
    // IRIS_BENCH_NICE=<n>: our C again with `helper_thread_nice = n`.
    const niceText = process.env.IRIS_BENCH_NICE;
    const nice = niceText !== undefined && niceText !== "" ? Number(niceText) : undefined;
    // IRIS_BENCH_WORKERS=<n>: our C again with `[server] workers = n`.
    const workersText = process.env.IRIS_BENCH_WORKERS;
    const workers =
      workersText !== undefined && workersText !== "" ? Number(workersText) : undefined;
    // Warm the page cache and every code path once.
    await nixCopy(b.url, closure.top, key, work, "warm-b");
    await nixCopy(floor.url, closure.top, key, work, "warm-floor");
    await nixCopy((await freshC()).url, closure.top, key, work, "warm-c");

    console.log(
      `\n1. nix copy --from http://... of the closure into a fresh store (${ROUNDS} rounds; ratios per round to the B run beside it)`,
    );
    const names = ["b", "floor", "c", "warm", "before", "nice", "workers"];
    const wall: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    const order = ["b", "floor", "c"];
    if (withBefore) order.push("before");
    if (nice !== undefined) order.push("nice");
    if (workers !== undefined) order.push("workers");
    for (let round = 0; round < ROUNDS; round++) {
      const turn = round % 2 === 0 ? order : [...order].reverse();
      for (const which of turn) {
        if (which === "b") {
          const start = await daemonCpu(b.url);
          wall.b?.push(await nixCopy(b.url, closure.top, key, work, `b-${round}`));
          cpu.b?.push((await daemonCpu(b.url)) - start);
        } else if (which === "floor") {
          const start = await floor.cpu();
          wall.floor?.push(await nixCopy(floor.url, closure.top, key, work, `f-${round}`));
          cpu.floor?.push((await floor.cpu()) - start);
        } else {
          const c = await freshC(
            [b.url],
            which === "before"
              ? { script: before }
              : which === "nice"
                ? { helperThreadNice: nice }
                : which === "workers"
                  ? { workers }
                  : {},
          );
          let start = await daemonCpu(c.url);
          wall[which]?.push(await nixCopy(c.url, closure.top, key, work, `${which}-${round}`));
          cpu[which]?.push((await daemonCpu(c.url)) - start);
          await cacheSettled(cacheDir, closure.paths.length);
          if (which !== "c") continue;
          start = await daemonCpu(c.url);
          wall.warm?.push(await nixCopy(c.url, closure.top, key, work, `w-${round}`));
          cpu.warm?.push((await daemonCpu(c.url)) - start);
        }
      }
    }
    const m = (name: string): number => median(wall[name] ?? []);
    /** min / median / max over rounds of `of[name][i] / of.b[i]`. */
    const paired = (of: Record<string, number[]>, name: string): number[] =>
      (of[name] ?? []).map((v, i) => v / (of.b?.[i] ?? NaN)).sort((x, y) => x - y);
    const spread = (r: number[]): string =>
      r.length === 0
        ? ""
        : `${(r[0] ?? NaN).toFixed(2)} / ${median(r).toFixed(2)} / ${(r.at(-1) ?? NaN).toFixed(2)}x`;
    const cpuOf = (name: string): string => `${median(cpu[name] ?? []).toFixed(2)} s`;
    const runs = (name: string): string =>
      (wall[name] ?? []).map((v) => (v / 1000).toFixed(1)).join(" ");
    const copyRow = (label: string, name: string, target = ""): string[] => [
      label,
      formatMs(m(name)),
      spread(paired(wall, name)),
      target,
      cpuOf(name),
      spread(paired(cpu, name)),
      runs(name),
    ];
    printTable([
      [
        "nix copy from",
        "median",
        "time / B min / median / max",
        "target",
        "server CPU (median)",
        "CPU / B's",
        "runs (s)",
      ],
      copyRow("B's irisd (baseline)", "b"),
      copyRow("forwarding floor -> B (no checks, no cache)", "floor"),
      copyRow("C's irisd, through B (empty cache)", "c", "<= 1.1x; CPU <= 2x"),
      ...(withBefore ? [copyRow("C, the IRIS_BENCH_BEFORE build, through B", "before")] : []),
      ...(nice !== undefined
        ? [copyRow(`C, helper_thread_nice = ${nice}, through B`, "nice")]
        : []),
      ...(workers !== undefined
        ? [copyRow(`C, workers = ${workers}, through B (empty cache)`, "workers")]
        : []),
      copyRow("C's irisd, from its NAR cache", "warm"),
    ]);

    console.log(
      `\n2. time to a 404 for a path nobody has (${NEGATIVE_SAMPLES} first requests, each followed by ${REPEATED} repeated ones)`,
    );
    const c = await freshC();
    await sleep(500);
    const baseline = await negatives(b.port, 1, 0);
    const viaB = await negatives(c.port, NEGATIVE_SAMPLES, 2100);
    hole = await blackhole();
    const withHole = await freshC([b.url, hole.url]);
    // The very first request after start: the blackhole has no filter yet and is asked directly.
    const first = await KeepAliveClient.connect("127.0.0.1", withHole.port);
    const veryFirst = await timed404(first);
    first.close();
    const holeFigures = await negatives(withHole.port, NEGATIVE_SAMPLES, 2100);
    const row = (name: string, f: NegativeFigures): string[] => [
      name,
      f.first.length > 0 ? ms(median(f.first)) : "",
      ms(median(f.repeated)),
      ms(percentile(f.repeated, 99)),
    ];
    printTable([
      ["404 from", "first (median)", "repeated (median)", "repeated p99"],
      row("B, its own store (baseline)", { first: [], repeated: baseline.repeated }),
      row("C, peer B (stale filter revalidated on the first)", viaB),
      row("C, peers B and a blackhole", holeFigures),
      ["C, peers B and a blackhole: the very first request", ms(veryFirst), "", ""],
    ]);
    console.log("documented bound for any narinfo answer: 2 s (lookup deadline 1.8 s)");

    console.log("\nSummary");
    printTable([
      ["figure", "value", "baseline", "ratio", "target", "met"],
      [
        "nix copy through C, empty cache",
        formatMs(m("c")),
        formatMs(m("b")),
        spread(paired(wall, "c")),
        "<= 1.1x",
        median(paired(wall, "c")) <= 1.1 ? "yes" : "NO",
      ],
      [
        "C's CPU per copy / B's",
        cpuOf("c"),
        cpuOf("b"),
        spread(paired(cpu, "c")),
        "<= 2x",
        median(paired(cpu, "c")) <= 2 ? "yes" : "NO",
      ],
      [
        "nix copy through the forwarding floor",
        formatMs(m("floor")),
        formatMs(m("b")),
        spread(paired(wall, "floor")),
        "",
        "",
      ],
      [
        "404 via C, first request",
        ms(median(viaB.first)),
        ms(median(baseline.repeated)),
        "",
        "",
        "",
      ],
      ["404 via C, repeated", ms(median(viaB.repeated)), ms(median(baseline.repeated)), "", "", ""],
      [
        "404 via C, blackhole peer, very first",
        ms(veryFirst),
        "",
        "",
        "<= 2 s",
        veryFirst <= 2000 ? "yes" : "NO",
      ],
    ]);
    const errors = nodeC?.logs().filter((l) => l.level >= 50) ?? [];
    if (errors.length > 0)
      console.log(`C logged ${errors.length} errors: ${JSON.stringify(errors[0])}`);
  } finally {
    await nodeC?.stop("SIGTERM");
    await nodeB?.stop("SIGTERM");
    floor?.child.kill("SIGTERM");
    hole?.close();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
