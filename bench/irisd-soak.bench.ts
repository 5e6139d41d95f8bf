/**
 * irisd under abuse, bounded (issue 13): one irisd ("loaded") takes, for
 * `IRIS_SOAK_SECONDS` (default 120):
 *   - 200 slow readers of a 64 MiB NAR, each reading ~200 B/s (reconnecting
 *     when dropped);
 *   - 2,000 idle connections (half a request line; reopened when closed);
 *   - a dripping peer (100 B/s) holding paths that clients ask for through
 *     the loaded irisd, while a good peer has them too;
 *   - bad inputs (garbage request lines, oversized headers, /rescan bodies
 *     cut off), a few per second;
 * while ordinary clients fetch narinfos and small NARs. The same ordinary
 * clients run against a second, unloaded irisd over the same store, in
 * alternating rounds of `IRIS_SOAK_ROUND_SECONDS` (default 5): their p50 and
 * p99 latency per round, paired as ratios loaded/unloaded (min / median /
 * max), errors, and each daemon's peak RSS and open fds.
 *
 *   npm run bench -- irisd-soak
 *   IRIS_SOAK_SECONDS=30 npm run bench -- irisd-soak     # shorter
 *   IRIS_SOAK_SCRIPT=<other checkout>/dist/bundle/ogygia-irisd.js ...  # another build, both daemons
 *
 * Needs ~2,300 file descriptors for the clients: the bench re-runs itself
 * under `ulimit -n 65536` in a child shell when the limit is lower.
 */

import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import {
  realPath,
  signedNarInfo,
  startFakePeer,
  type FakePeer,
  type RealPath,
} from "../test/helpers/fake-peer.js";
import {
  makeLargeTree,
  startIrisd,
  stopAllIrisd,
  type IrisdProcess,
} from "../test/helpers/irisd.js";
import {
  addToStore,
  buildClosure,
  generateKeys,
  hashPartOf,
  makeChrootStore,
  signPaths,
  uniqueSalt,
} from "../test/helpers/nix.js";
import { currentRss, peakRss } from "./lib-iris-servers.js";
import { median, percentile, printTable } from "./lib-timing.js";

const SECONDS = Number(process.env.IRIS_SOAK_SECONDS ?? process.argv[2] ?? 120);
const ROUND_SECONDS = Number(process.env.IRIS_SOAK_ROUND_SECONDS ?? 5);
const SLOW_READERS = Number(process.env.IRIS_SOAK_SLOW_READERS ?? 200);
const IDLE_CONNECTIONS = Number(process.env.IRIS_SOAK_IDLE ?? 2000);
const ORDINARY_CLIENTS = 4;
const DRIP_PATHS = 12;
const FD_NEEDED = SLOW_READERS + IDLE_CONNECTIONS + 500;

/** Re-runs this script under a higher fd limit, in a child shell, when needed. */
function ensureFdLimit(): void {
  if (process.env.IRIS_SOAK_CHILD === "1") return;
  const soft = Number(spawnSync("bash", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim());
  if (Number.isFinite(soft) && soft >= FD_NEEDED * 2) return;
  const self = fileURLToPath(import.meta.url);
  const script = `ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  const result = spawnSync(
    "bash",
    ["-c", script, process.execPath, self, ...process.argv.slice(2)],
    {
      stdio: "inherit",
      env: { ...process.env, IRIS_SOAK_CHILD: "1" },
    },
  );
  process.exit(result.status ?? 1);
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One GET over `agent`; resolves with the status (0 on a transport error) and its latency. */
function timedGet(url: string, agent: http.Agent): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      res.on("data", () => undefined);
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, ms: performance.now() - started });
      });
      res.on("error", () => {
        resolve({ status: 0, ms: performance.now() - started });
      });
    });
    req.setTimeout(30_000, () => req.destroy());
    req.on("error", () => {
      resolve({ status: 0, ms: performance.now() - started });
    });
  });
}

interface RoundResult {
  latencies: number[];
  errors: number;
}

/** Ordinary clients against `base` for `seconds`: narinfos and small NARs, in turn. */
async function ordinaryRound(
  base: string,
  urls: readonly string[],
  seconds: number,
): Promise<RoundResult> {
  const until = performance.now() + seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  await Promise.all(
    Array.from({ length: ORDINARY_CLIENTS }, async (_, client) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      let i = client;
      while (performance.now() < until) {
        const { status, ms } = await timedGet(`${base}${urls[i % urls.length] ?? "/"}`, agent);
        i += 1;
        if (status !== 200) errors += 1;
        else latencies.push(ms);
      }
      agent.destroy();
    }),
  );
  return { latencies, errors };
}

/** The abuse against one daemon until `stop()`: counters of what was done and survived. */
function startAbuse(
  node: IrisdProcess,
  options: { bigNarUrl: string; dripNarUrls: string[] },
): { stop(): void; counts: Record<string, number> } {
  const counts: Record<string, number> = {
    slowReaderConnections: 0,
    slowReadersDropped: 0,
    idleConnectionsOpened: 0,
    idleConnectionsClosedByServer: 0,
    dripFetchesOk: 0,
    dripFetchesFailed: 0,
    badInputs: 0,
  };
  const state = { stopped: false };
  const sockets = new Set<net.Socket>();
  const open = (): net.Socket => {
    const socket = net.connect({ port: node.port, host: "127.0.0.1" });
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
    return socket;
  };
  const path = new URL(options.bigNarUrl).pathname;
  const slowReader = (): void => {
    if (state.stopped) return;
    counts.slowReaderConnections = (counts.slowReaderConnections ?? 0) + 1;
    const socket = open();
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    socket.pause();
    const timer = setInterval(() => {
      socket.read(200);
    }, 1000);
    socket.on("close", () => {
      clearInterval(timer);
      if (state.stopped) return;
      counts.slowReadersDropped = (counts.slowReadersDropped ?? 0) + 1;
      setTimeout(slowReader, 1000);
    });
    // A paused socket sees its close only when it reads: poll it.
    socket.on("end", () => socket.destroy());
  };
  const idle = (): void => {
    if (state.stopped) return;
    counts.idleConnectionsOpened = (counts.idleConnectionsOpened ?? 0) + 1;
    const socket = open();
    socket.write("GET /nix-cache-info HT");
    socket.on("data", () => undefined);
    socket.on("close", () => {
      if (state.stopped) return;
      counts.idleConnectionsClosedByServer = (counts.idleConnectionsClosedByServer ?? 0) + 1;
      setTimeout(idle, 200);
    });
  };
  // Opened gradually: 2,000 at once would be a connect storm, not idle connections.
  void (async () => {
    for (let i = 0; i < SLOW_READERS && !state.stopped; i++) {
      slowReader();
      if (i % 20 === 19) await sleep(50);
    }
    for (let i = 0; i < IDLE_CONNECTIONS && !state.stopped; i++) {
      idle();
      if (i % 100 === 99) await sleep(50);
    }
  })();
  // Drip paths, one after another, through the loaded daemon.
  void (async () => {
    for (const url of options.dripNarUrls) {
      if (state.stopped) return;
      const agent = new http.Agent({ keepAlive: false });
      const { status } = await timedGet(url, agent);
      if (status === 200) counts.dripFetchesOk = (counts.dripFetchesOk ?? 0) + 1;
      else counts.dripFetchesFailed = (counts.dripFetchesFailed ?? 0) + 1;
      await sleep(2000);
    }
  })();
  const bad = [
    "GARBAGE\r\n\r\n",
    `GET /${"x".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    "GET /nix-cache-info HTTP/1.1\r\nHost: x\r\nX: " + "y".repeat(16_000) + "\r\n\r\n",
    'POST /rescan HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"pa',
    "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
  ];
  const badTimer = setInterval(() => {
    for (const text of bad) {
      const socket = open();
      socket.on("data", () => undefined);
      socket.write(text);
      setTimeout(() => socket.destroy(), 300);
      counts.badInputs = (counts.badInputs ?? 0) + 1;
    }
  }, 1000);
  return {
    counts,
    stop() {
      state.stopped = true;
      clearInterval(badTimer);
      for (const socket of sockets) socket.destroy();
    },
  };
}

async function metricsOf(node: IrisdProcess): Promise<string> {
  return new Promise((resolve) => {
    http
      .get(`${node.url}/metrics`, { agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          resolve(Buffer.concat(chunks).toString("utf8"));
        });
      })
      .on("error", () => {
        resolve("");
      });
  });
}

async function main(): Promise<void> {
  ensureFdLimit();
  const dir = mkdtempSync(path.join(os.tmpdir(), "ogygia-irisd-soak-"));
  let dripper: FakePeer | undefined;
  let good: FakePeer | undefined;
  try {
    console.log(`irisd soak: ${SECONDS} s, rounds of ${ROUND_SECONDS} s per daemon; preparing…`);
    const keys = await generateKeys(dir, "soak-1");
    const closure = await buildClosure(dir, uniqueSalt("soak"));
    await makeLargeTree(path.join(dir, "big"), {
      files: 16,
      fileBytes: 4 * 1024 * 1024,
      seed: uniqueSalt("soak-big"),
    });
    const big = await addToStore(path.join(dir, "big"));
    const drips: RealPath[] = [];
    for (let i = 0; i < DRIP_PATHS; i++) {
      const where = path.join(dir, `drip-${i}`);
      await makeLargeTree(where, { files: 1, fileBytes: 64 * 1024, seed: uniqueSalt(`drip-${i}`) });
      drips.push(await realPath(await addToStore(where)));
    }
    const store = await makeChrootStore([big, ...closure.paths], { root: path.join(dir, "a") });
    await signPaths(keys, [big, ...closure.paths], { store: store.root });
    const fake = (behaviour: "drip" | "serve", delay?: number) =>
      drips.map((p) => ({
        hashPart: p.hashPart,
        narInfo: signedNarInfo(p.info, keys.secretKey),
        ...(delay === undefined ? {} : { narInfoDelayMs: delay }),
        nar: {
          narHash: p.narHash,
          bytes: p.nar,
          behaviour:
            behaviour === "drip"
              ? ({ kind: "drip", chunkBytes: 100, everyMs: 1000 } as const)
              : ({ kind: "serve" } as const),
        },
      }));
    dripper = await startFakePeer(fake("drip"));
    good = await startFakePeer(fake("serve", 300));
    const start = (name: string): Promise<IrisdProcess> =>
      startIrisd({
        ...(process.env.IRIS_SOAK_SCRIPT === undefined
          ? {}
          : { script: process.env.IRIS_SOAK_SCRIPT }),
        storeRoot: store.root,
        secretKeyFiles: [keys.secretKeyFile],
        peers: [dripper?.url ?? "", good?.url ?? ""],
        trustedKeys: [keys.publicKey],
        cache: { dir: path.join(dir, `cache-${name}`) },
      });
    const loaded = await start("loaded");
    const unloaded = await start("unloaded");
    const narinfoOf = async (node: IrisdProcess, storePath: string): Promise<string> => {
      const res = await fetch(`${node.url}/${hashPartOf(storePath)}.narinfo`);
      const text = await res.text();
      const url = /^URL: (.*)$/m.exec(text)?.[1];
      if (url === undefined) throw new Error(`no narinfo for ${storePath}: ${text}`);
      return `/${url}`;
    };
    const urls: string[] = [];
    for (const p of closure.paths) {
      urls.push(`/${hashPartOf(p)}.narinfo`, await narinfoOf(loaded, p));
    }
    urls.push("/nix-cache-info");
    const bigNarUrl = `${loaded.url}${await narinfoOf(loaded, big)}`;
    const dripNarUrls: string[] = [];
    for (const p of drips) dripNarUrls.push(`${loaded.url}${await narinfoOf(loaded, p.storePath)}`);

    const abuse = startAbuse(loaded, { bigNarUrl, dripNarUrls });
    const loadedRounds: RoundResult[] = [];
    const unloadedRounds: RoundResult[] = [];
    const fds = { loaded: 0, unloaded: 0 };
    const rss = { loaded: 0, unloaded: 0 };
    const sampler = setInterval(() => {
      fds.loaded = Math.max(fds.loaded, fdCount(loaded.pid));
      fds.unloaded = Math.max(fds.unloaded, fdCount(unloaded.pid));
      rss.loaded = Math.max(rss.loaded, currentRss(loaded.pid));
      rss.unloaded = Math.max(rss.unloaded, currentRss(unloaded.pid));
    }, 500);
    const until = performance.now() + SECONDS * 1000;
    // Let the abuse ramp up before measuring.
    await sleep(Math.min(5000, (SECONDS * 1000) / 6));
    while (performance.now() < until) {
      loadedRounds.push(await ordinaryRound(loaded.url, urls, ROUND_SECONDS));
      unloadedRounds.push(await ordinaryRound(unloaded.url, urls, ROUND_SECONDS));
    }
    clearInterval(sampler);
    const loadedMetrics = await metricsOf(loaded);
    abuse.stop();

    const p = (rounds: RoundResult[], q: number) => rounds.map((r) => percentile(r.latencies, q));
    const ratio = (ours: number[], base: number[]): string => {
      const ratios = ours.map((v, i) => v / (base[i] ?? NaN)).sort((a, b) => a - b);
      return `${median(ratios).toFixed(2)}x (min ${ratios[0]?.toFixed(2)}, max ${ratios.at(-1)?.toFixed(2)})`;
    };
    const all = (rounds: RoundResult[]) => rounds.flatMap((r) => r.latencies);
    const errors = (rounds: RoundResult[]) => rounds.reduce((n, r) => n + r.errors, 0);
    console.log(
      `\n${loadedRounds.length} paired rounds of ${ROUND_SECONDS} s; ordinary clients: ${ORDINARY_CLIENTS}`,
    );
    printTable([
      ["", "loaded irisd", "unloaded irisd", "ratio per round (loaded/unloaded)"],
      [
        "ordinary p50",
        `${percentile(all(loadedRounds), 50).toFixed(2)} ms`,
        `${percentile(all(unloadedRounds), 50).toFixed(2)} ms`,
        ratio(p(loadedRounds, 50), p(unloadedRounds, 50)),
      ],
      [
        "ordinary p99",
        `${percentile(all(loadedRounds), 99).toFixed(2)} ms`,
        `${percentile(all(unloadedRounds), 99).toFixed(2)} ms`,
        ratio(p(loadedRounds, 99), p(unloadedRounds, 99)),
      ],
      [
        "ordinary requests",
        String(all(loadedRounds).length),
        String(all(unloadedRounds).length),
        "",
      ],
      ["ordinary errors", String(errors(loadedRounds)), String(errors(unloadedRounds)), ""],
      ["peak RSS (sampled)", mib(rss.loaded), mib(rss.unloaded), ""],
      ["peak RSS (VmHWM)", mib(peakRss(loaded.pid)), mib(peakRss(unloaded.pid)), ""],
      ["peak open fds", String(fds.loaded), String(fds.unloaded), ""],
    ]);
    console.log("\nabuse against the loaded irisd:");
    printTable(Object.entries(abuse.counts).map(([k, v]) => [k, String(v)]));
    const interesting = loadedMetrics
      .split("\n")
      .filter(
        (l) =>
          /^irisd_(connections_shed_total|peer_slow_total|connections_open|nar_transfers_aborted_total)/.test(
            l,
          ) || /^irisd_http_requests_total\{route="(invalid|rescan)"/.test(l),
      );
    console.log("\nloaded irisd's counters:");
    for (const line of interesting) console.log(`  ${line}`);
    const errorLines = loaded.logs().filter((l) => l.level >= 50);
    console.log(`\nerror-level log lines of the loaded irisd: ${errorLines.length}`);
    for (const line of errorLines.slice(0, 5)) console.log(`  ${JSON.stringify(line)}`);
    writeFileSync(path.join(dir, "done"), "");
  } finally {
    await stopAllIrisd();
    await dripper?.stop();
    await good?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
