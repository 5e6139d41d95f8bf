/**
 * ogygia-irisd with `[server] workers = 2`: a real `nix copy --from` through
 * the workers (signatures and hashes checked), a path that only a peer has
 * (forwarded to the primary, fetched, verified), `/metrics` adding up every
 * process, loopback-only routes through a worker, a killed worker replaced,
 * readiness once the workers listen, a listen error reported once, and
 * SIGTERM leaving no process and no private socket behind.
 */

import { execFileSync } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import {
  IRISD_BIN,
  httpRequest,
  irisdConfigText,
  startIrisd,
  stopAllIrisd,
  writeIrisdConfig,
  type IrisdProcess,
  type StartIrisdOptions,
} from "./helpers/irisd.js";
import {
  hashPartOf,
  nixCopy,
  nixVerify,
  pathInfoJson,
  signedClosureStore,
  type SignedClosureStore,
} from "./helpers/nix.js";
import {
  removeDir,
  startProcess,
  tempDir,
  waitFor,
  type ManagedProcess,
} from "./helpers/process.js";

const NOTIFY_LISTENER = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "fixtures/iris/notify-listener.py",
);

let dir: string;
let runtimeDir: string;
let a: SignedClosureStore;
let b: SignedClosureStore;
const helpers: ManagedProcess[] = [];

/** The pids of a process's children (the workers of a primary). */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync("ps", ["--ppid", String(pid), "-o", "pid="], { encoding: "utf8" })
      .split("\n")
      .map((line) => Number(line.trim()))
      .filter((n) => n > 0);
  } catch {
    // ps exits 1 when there is none.
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `count` GETs, each on a new connection (so that round-robin spreads them over the workers). */
async function getEach(url: string, count: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) {
    statuses.push((await httpRequest(url, { agent: false })).status);
  }
  return statuses;
}

function counter(metrics: string, name: string, labels: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** A systemd notify socket that prints what the daemon sends (READY=1...). */
async function startNotifyListener(): Promise<{ socket: string; listener: ManagedProcess }> {
  const socket = path.join(await tempDir("iris-workers-notify"), "notify.sock");
  const listener = startProcess("python3", [NOTIFY_LISTENER, socket]);
  helpers.push(listener);
  await waitFor("the notify listener", () =>
    listener.output().includes("listening") ? true : undefined,
  );
  return { socket, listener };
}

function startWorkers(
  store: SignedClosureStore,
  extra: Partial<StartIrisdOptions> = {},
): Promise<IrisdProcess> {
  return startIrisd({
    storeRoot: store.store.root,
    workers: 2,
    shutdownTimeoutSecs: 5,
    ...extra,
    env: { RUNTIME_DIRECTORY: runtimeDir, ...extra.env },
  });
}

beforeAll(async () => {
  dir = await tempDir("iris-workers");
  runtimeDir = await tempDir("iris-workers-run");
  [a, b] = await Promise.all([
    signedClosureStore(dir, "iris-workers-a", { storeName: "a" }),
    signedClosureStore(dir, "iris-workers-b", { storeName: "b" }),
  ]);
}, 180_000);

afterEach(async () => {
  await stopAllIrisd();
  await Promise.all(helpers.splice(0).map((p) => p.stop("SIGKILL")));
});

afterAll(async () => {
  await removeDir(dir);
  await removeDir(runtimeDir);
});

describe("[server] workers = 2", () => {
  it("serves a real nix copy --from with its workers, signatures and hashes checked", async () => {
    const irisd = await startWorkers(a);
    expect(irisd.logs().find((l) => l.msg === "listening")?.workers).toBe(2);
    expect(childrenOf(irisd.pid)).toHaveLength(2);
    const client = path.join(dir, "client-a");
    await nixCopy({
      from: irisd.url,
      cacheDir: path.join(dir, "nix-cache-a"),
      to: client,
      paths: [a.closure.top],
      trustedPublicKeys: [a.keys.publicKey],
    });
    const copied = await pathInfoJson([a.closure.top], { store: client, recursive: true });
    expect(copied.map((p) => p.path).sort()).toEqual([...a.closure.paths].sort());
    await nixVerify({
      store: client,
      paths: [a.closure.top],
      trustedPublicKeys: [a.keys.publicKey],
    });
    // The narinfos and NARs came from the local store, in the workers: nothing went to the primary.
    const metrics = (await httpRequest(`${irisd.url}/metrics`)).body.toString("utf8");
    expect(counter(metrics, "irisd_http_requests_total", 'route="nar",status="200"')).toBe(3);
    expect(metrics).not.toContain('route="forward"');
  });

  it("serves a path only a peer has, through the primary's peer layer, verified", async () => {
    const peer = await startIrisd({ storeRoot: b.store.root });
    const irisd = await startWorkers(a, {
      peers: [peer.url],
      trustedKeys: [b.keys.publicKey],
      cache: { dir: path.join(dir, "cache-c") },
    });
    const client = path.join(dir, "client-b");
    await nixCopy({
      from: irisd.url,
      cacheDir: path.join(dir, "nix-cache-b"),
      to: client,
      paths: [b.closure.top],
      trustedPublicKeys: [b.keys.publicKey],
    });
    await nixVerify({
      store: client,
      paths: [b.closure.top],
      trustedPublicKeys: [b.keys.publicKey],
    });
    const copied = await pathInfoJson([b.closure.top], { store: client, recursive: true });
    expect(copied.map((p) => p.path).sort()).toEqual([...b.closure.paths].sort());
    // A path in neither store: the 404 is the primary's, after asking the peer.
    const missing = await httpRequest(`${irisd.url}/${"0".repeat(32)}.narinfo`);
    expect(missing.status).toBe(404);
    // The primary's own routes answer through a worker, status and headers intact.
    const bloom = await httpRequest(`${irisd.url}/bloom`);
    expect(bloom.status).toBe(200);
    expect(bloom.headers.etag).toMatch(/^"/);
    const providers = await httpRequest(`${irisd.url}/providers/${hashPartOf(b.closure.top)}`);
    expect(providers.status).toBe(200);
    expect(JSON.parse(providers.body.toString("utf8"))).toMatchObject({
      providers: [expect.objectContaining({ url: peer.url }) as unknown],
    });
  });

  it("adds up every worker's and the primary's requests in one /metrics", async () => {
    const irisd = await startWorkers(a);
    // Ten new connections: round-robin gives each worker five.
    expect(await getEach(`${irisd.url}/nix-cache-info`, 10)).toEqual(Array(10).fill(200));
    // Four paths in no store: the workers pass them on, the primary answers (and counts) 404.
    expect(await getEach(`${irisd.url}/${"1".repeat(32)}.narinfo`, 4)).toEqual(Array(4).fill(404));
    const res = await httpRequest(`${irisd.url}/metrics`);
    expect(res.status).toBe(200);
    const metrics = res.body.toString("utf8");
    expect(counter(metrics, "irisd_http_requests_total", 'route="cache-info",status="200"')).toBe(
      10,
    );
    expect(counter(metrics, "irisd_http_requests_total", 'route="narinfo",status="404"')).toBe(4);
    expect(metrics).not.toContain('route="forward"');
    expect(metrics.match(/^irisd_process_start_time_seconds /gm)).toHaveLength(1);
  });

  it("passes the client's address to the primary: POST /rescan from loopback works", async () => {
    const irisd = await startWorkers(a);
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const body = JSON.stringify({ paths: [a.closure.top] });
      const req = http.request(`${irisd.url}/rescan`, {
        method: "POST",
        agent: false,
        headers: { "Content-Type": "application/json", "Content-Length": String(body.length) },
      });
      req.on("response", (r) => {
        let text = "";
        r.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
        r.on("end", () => {
          resolve({ status: r.statusCode ?? 0, body: text });
        });
      });
      req.on("error", reject);
      req.end(body);
    });
    expect(res.status).toBe(200);
    expect(res.body).toContain("indexed");
  });

  it("starts a killed worker again, and keeps serving", async () => {
    const irisd = await startWorkers(a);
    const before = childrenOf(irisd.pid);
    expect(before).toHaveLength(2);
    const victim = before[0] ?? 0;
    process.kill(victim, "SIGKILL");
    const restarted = await waitFor("the worker to be replaced", () => {
      const now = childrenOf(irisd.pid);
      return now.length === 2 && !now.includes(victim) ? now : undefined;
    });
    expect(restarted).toContain(before[1]);
    expect(irisd.logs().find((l) => l.msg === "worker exited: starting it again")).toMatchObject({
      signal: "SIGKILL",
      workerPid: victim,
    });
    await waitFor("the new worker to listen", async () =>
      (await getEach(`${irisd.url}/nix-cache-info`, 4)).every((s) => s === 200) ? true : undefined,
    );
    const narinfo = await httpRequest(`${irisd.url}/${hashPartOf(a.closure.top)}.narinfo`);
    expect(narinfo.status).toBe(200);
  });

  it("is ready (READY=1) once the workers listen, and SIGTERM leaves no process or socket", async () => {
    const { socket, listener } = await startNotifyListener();
    const others = new Set(await readdir(runtimeDir));
    const irisd = await startWorkers(a, { env: { NOTIFY_SOCKET: socket } });
    await waitFor("READY=1", () => (listener.output().includes("READY=1") ? true : undefined));
    const workers = childrenOf(irisd.pid).filter((pid) => {
      const cmd = execFileSync("ps", ["-p", String(pid), "-o", "args="], { encoding: "utf8" });
      return cmd.includes("ogygia-irisd");
    });
    expect(workers).toHaveLength(2);
    // Its private socket's folder, 0700.
    const own = (await readdir(runtimeDir)).filter((name) => !others.has(name));
    expect(own).toEqual([expect.stringMatching(/^ogygia-irisd-/) as unknown]);
    expect((await stat(path.join(runtimeDir, own[0] ?? ""))).mode & 0o777).toBe(0o700);
    expect(await irisd.stop("SIGTERM")).toBe(0);
    expect(workers.filter(alive)).toEqual([]);
    expect(alive(irisd.pid)).toBe(false);
    expect((await readdir(runtimeDir)).filter((name) => !others.has(name))).toEqual([]);
    await removeDir(path.dirname(socket));
  });

  it("stops cleanly on a SIGTERM while it starts: no READY=1, no process or socket left", async () => {
    const { socket, listener } = await startNotifyListener();
    const others = new Set(await readdir(runtimeDir));
    const configFile = await writeIrisdConfig(
      irisdConfigText({ storeRoot: a.store.root, workers: 2, logLevel: "debug" }),
    );
    const irisd = startProcess(process.execPath, [IRISD_BIN, "--config", configFile], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NOTIFY_SOCKET: socket,
        RUNTIME_DIRECTORY: runtimeDir,
      },
    });
    helpers.push(irisd);
    // The first worker listens while the second is still starting: the primary is mid-start.
    await waitFor("the first worker", () =>
      irisd.output().includes('"msg":"worker listening"') ? true : undefined,
    );
    const pid = irisd.child.pid ?? -1;
    const workers = childrenOf(pid);
    irisd.child.kill("SIGTERM");
    expect(await irisd.exited).toBe(0);
    expect(irisd.output()).toContain('"msg":"stopped"');
    expect(workers.filter(alive)).toEqual([]);
    expect((await readdir(runtimeDir)).filter((name) => !others.has(name))).toEqual([]);
    expect(listener.output()).not.toContain("READY=1");
    await removeDir(path.dirname(socket));
  });

  it("reports a listen error once, not per worker, and exits 1", async () => {
    const first = await startWorkers(a);
    const failure = await startWorkers(a, { listen: [`127.0.0.1:${first.port}`] }).then(
      () => "",
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    expect(failure).toContain("exited with 1");
    const lines = failure.split("\n").filter((line) => line.includes("already in use"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('"msg":"cannot start: cannot listen on 127.0.0.1:');
    expect(failure).not.toContain("starting it again");
  });
});
