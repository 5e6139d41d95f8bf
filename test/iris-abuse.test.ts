/**
 * irisd under abuse (issue 13, rows 2, 3, 4, 6, 8 and row 9's peer
 * failure): clients that never read, hold connections with half a request
 * or leave mid-body; a peer that drips a NAR or resets before any header;
 * a cache entry damaged on disk while the daemon was down. Real daemons over
 * real chroot stores; the hostile peers are fake (they are the adversary).
 */

import { createHash } from "node:crypto";
import { open, readdir, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  realPath,
  signedNarInfo,
  startFakePeer,
  type FakePeer,
  type RealPath,
} from "./helpers/fake-peer.js";
import {
  httpRequest,
  makeLargeTree,
  startIrisd,
  stopAllIrisd,
  type IrisdProcess,
} from "./helpers/irisd.js";
import {
  addToStore,
  generateKeys,
  hashPartOf,
  makeChrootStore,
  nixDump,
  signedClosureStore,
  uniqueSalt,
  type SignedClosureStore,
  type TestKeys,
} from "./helpers/nix.js";
import { removeDir, sleep, tempDir, waitFor } from "./helpers/process.js";

let dir: string;
let keys: TestKeys;
/**
 * A 96 MiB path served from A's own store: more than the kernel's socket
 * buffers hold (on loopback they may take 36 MiB).
 */
let bigPath: string;
let nodeA: IrisdProcess;
/** A small path, for stores that only need to exist. */
let smallPath: string;

/** A chroot store holding only a small path (irisd needs a store database). */
async function smallStore(name: string): Promise<string> {
  return (await makeChrootStore([smallPath], { root: path.join(dir, name) })).root;
}

async function metricsOf(node: IrisdProcess): Promise<string> {
  return (await httpRequest(`${node.url}/metrics`)).body.toString("utf8");
}

/** The value of one sample in /metrics (0 when absent). */
function sample(metrics: string, name: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

async function narUrlOf(node: IrisdProcess, storePath: string): Promise<string> {
  const res = await httpRequest(`${node.url}/${hashPartOf(storePath)}.narinfo`);
  expect(res.status, res.body.toString("utf8")).toBe(200);
  const url = /^URL: (.*)$/m.exec(res.body.toString("utf8"))?.[1];
  if (url === undefined) throw new Error("no URL in the narinfo");
  return `${node.url}/${url}`;
}

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A connection with its close observed. */
interface Probe {
  socket: net.Socket;
  closed: boolean;
  received: number;
}

function connect(port: number, host = "127.0.0.1"): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host });
    const probe: Probe = { socket, closed: false, received: 0 };
    socket.on("error", () => undefined);
    socket.on("close", () => {
      probe.closed = true;
    });
    socket.on("data", (chunk: Buffer) => {
      probe.received += chunk.length;
    });
    socket.once("connect", () => {
      resolve(probe);
    });
    socket.once("error", reject);
  });
}

/** A non-loopback IPv4 address of this machine. */
function outsideAddress(): string {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const address of list ?? []) {
      if (address.family === "IPv4" && !address.internal) return address.address;
    }
  }
  throw new Error("this machine has no non-loopback IPv4 address to test /rescan from");
}

beforeAll(async () => {
  dir = await tempDir("iris-abuse");
  keys = await generateKeys(dir, "abuse-1");
  const tree = path.join(dir, "big");
  await makeLargeTree(tree, { files: 24, fileBytes: 4 * 1024 * 1024, seed: uniqueSalt("abuse") });
  bigPath = await addToStore(tree);
  await writeFile(path.join(dir, "small.txt"), uniqueSalt("abuse-small"));
  smallPath = await addToStore(path.join(dir, "small.txt"));
  const storeA = await makeChrootStore([bigPath], { root: path.join(dir, "a") });
  nodeA = await startIrisd({
    storeRoot: storeA.root,
    secretKeyFiles: [keys.secretKeyFile],
    extraToml: [
      "[limits]",
      "max_connections = 40",
      "header_timeout_secs = 120",
      "write_timeout_secs = 2",
    ].join("\n"),
  });
}, 180_000);

afterAll(async () => {
  await stopAllIrisd();
  await removeDir(dir);
});

describe("clients that hold resources", () => {
  it("row 3: clients that never read a large NAR are paused, then dropped, logged once", async () => {
    const url = new URL(await narUrlOf(nodeA, bigPath));
    const probes = await Promise.all(Array.from({ length: 5 }, () => connect(nodeA.port)));
    for (const probe of probes) {
      probe.socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      // Read nothing: the kernel buffers fill, then the server's.
      probe.socket.pause();
    }
    const dropped = async (): Promise<number> => {
      const metrics = await metricsOf(nodeA);
      return (
        sample(metrics, 'irisd_connections_shed_total{reason="write-timeout"}') +
        sample(metrics, 'irisd_connections_shed_total{reason="buffer"}') +
        sample(metrics, 'irisd_connections_shed_total{reason="memory"}')
      );
    };
    await waitFor(
      "the server to drop the clients that read nothing",
      async () => ((await dropped()) >= 5 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    // Reading again, each client finds its response cut short: never a complete-looking body.
    const narSize = (await nixDump(bigPath)).length;
    for (const probe of probes) probe.socket.resume();
    await waitFor("the clients to see their connections closed", () =>
      probes.every((p) => p.closed) ? true : undefined,
    );
    for (const probe of probes) expect(probe.received).toBeLessThan(narSize);
    // One log line for the cause, not one per client.
    const lines = nodeA
      .logs()
      .filter((l) => l.cause === "write-timeout" || l.cause === "buffer" || l.cause === "memory");
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.length).toBeLessThan(5);
    expect(nodeA.logs().filter((l) => l.level >= 50)).toEqual([]);
    // An ordinary client is still served the whole NAR.
    const res = await httpRequest(url.toString());
    expect(res.status).toBe(200);
    expect(sha256(res.body)).toBe(sha256(await nixDump(bigPath)));
  }, 120_000);

  it("row 3: what all responses hold is bounded: over it, the most stalled responses are dropped", async () => {
    const node = await startIrisd({
      storeRoot: (await makeChrootStore([bigPath], { root: path.join(dir, "m") })).root,
      secretKeyFiles: [keys.secretKeyFile],
      // No write timeout within the test: only the memory bound can drop them. Each
      // stalled response holds about one 1 MiB chunk: ten hold far more than 2 MiB.
      extraToml: "[limits]\nwrite_timeout_secs = 3600\nbuffered_bytes_total = 2097152",
    });
    const url = new URL(await narUrlOf(node, bigPath));
    const probes = await Promise.all(Array.from({ length: 10 }, () => connect(node.port)));
    for (const probe of probes) {
      probe.socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      probe.socket.pause();
    }
    const shed = 'irisd_connections_shed_total{reason="memory"}';
    await waitFor(
      "the memory bound to drop stalled responses",
      async () => (sample(await metricsOf(node), shed) >= 5 ? true : undefined),
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    expect(node.logs().filter((l) => l.cause === "memory")).toHaveLength(1);
    for (const probe of probes) probe.socket.destroy();
    await node.stop();
  }, 120_000);

  it("row 4: at the connection cap, the oldest idle connections are shed and a new client is served", async () => {
    const probes: Probe[] = [];
    for (let i = 0; i < 60; i++) {
      const probe = await connect(nodeA.port);
      // Half a request line, never finished.
      probe.socket.write("GET /nix-cache-info HT");
      probes.push(probe);
    }
    await waitFor("the oldest connections to be shed", () =>
      probes.filter((p) => p.closed).length >= 20 ? true : undefined,
    );
    const res = await httpRequest(`${nodeA.url}/nix-cache-info`, { agent: false });
    expect(res.status).toBe(200);
    // Oldest first: the first connections went, the last ones are still open.
    expect(probes[0]?.closed).toBe(true);
    expect(probes[59]?.closed).toBe(false);
    const metrics = await metricsOf(nodeA);
    expect(
      sample(metrics, 'irisd_connections_shed_total{reason="cap-idle"}'),
    ).toBeGreaterThanOrEqual(20);
    const lines = nodeA.logs().filter((l) => l.cause === "cap-idle");
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe(40);
    for (const probe of probes) probe.socket.destroy();
  });

  it("row 4: a connection that never finishes its headers is closed after the header timeout", async () => {
    const node = await startIrisd({
      storeRoot: await smallStore("h"),
      extraToml: "[limits]\nheader_timeout_secs = 1",
    });
    const probe = await connect(node.port);
    probe.socket.write("GET /nix-cache-info HTTP/1.1\r\nHost: x\r\n");
    await waitFor("the header timeout", () => (probe.closed ? true : undefined), {
      timeoutMs: 20_000,
    });
    const metrics = await metricsOf(node);
    expect(sample(metrics, 'irisd_connections_shed_total{reason="header-timeout"}')).toBe(1);
    await node.stop();
  }, 60_000);

  it("row 8: a /rescan client leaving mid-body is neither a 500 nor an error in the log", async () => {
    const probe = await connect(nodeA.port);
    probe.socket.write(
      "POST /rescan HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
        'Content-Length: 100000\r\n\r\n{"paths": [',
    );
    await sleep(200);
    probe.socket.destroy();
    const aborted = 'irisd_nar_transfers_aborted_total{route="rescan",reason="client"}';
    await waitFor("the abort to be counted", async () =>
      sample(await metricsOf(nodeA), aborted) >= 1 ? true : undefined,
    );
    const metrics = await metricsOf(nodeA);
    expect(metrics).not.toMatch(/irisd_http_requests_total\{route="rescan",status="5\d\d"\}/);
    expect(nodeA.logs().filter((l) => l.level >= 50)).toEqual([]);
  });

  it("/rescan from an address that is not loopback is refused with 403", async () => {
    const address = outsideAddress();
    const node = await startIrisd({ storeRoot: await smallStore("r"), listen: [`${address}:0`] });
    const res = await httpRequest(`${node.url}/rescan`, { method: "POST" });
    expect(res.status).toBe(403);
    expect(res.body.toString("utf8")).toMatch(/loopback/);
    await node.stop();
  });
});

describe("hostile peers", () => {
  let slow: RealPath;
  let resetting: RealPath;
  let dripper: FakePeer;
  let good: FakePeer;
  let resetter: FakePeer;
  let nodeC: IrisdProcess;

  beforeAll(async () => {
    const tree = async (name: string, files: number): Promise<RealPath> => {
      const where = path.join(dir, name);
      await makeLargeTree(where, { files, fileBytes: 256 * 1024, seed: uniqueSalt(name) });
      return realPath(await addToStore(where));
    };
    [slow, resetting] = await Promise.all([tree("slow", 3), tree("resetting", 1)]);
    dripper = await startFakePeer([
      {
        hashPart: slow.hashPart,
        narInfo: signedNarInfo(slow.info, keys.secretKey),
        nar: {
          narHash: slow.narHash,
          bytes: slow.nar,
          behaviour: { kind: "drip", chunkBytes: 100, everyMs: 1000 },
        },
      },
    ]);
    good = await startFakePeer([
      {
        hashPart: slow.hashPart,
        narInfo: signedNarInfo(slow.info, keys.secretKey),
        // Answers after the dripper: the dripper is the first provider.
        narInfoDelayMs: 500,
        nar: { narHash: slow.narHash, bytes: slow.nar, behaviour: { kind: "serve" } },
      },
    ]);
    resetter = await startFakePeer([
      {
        hashPart: resetting.hashPart,
        narInfo: signedNarInfo(resetting.info, keys.secretKey),
        nar: { narHash: resetting.narHash, bytes: resetting.nar, behaviour: { kind: "reset" } },
      },
    ]);
    nodeC = await startIrisd({
      storeRoot: await smallStore("c"),
      peers: [dripper.url, good.url, resetter.url],
      trustedKeys: [keys.publicKey],
      cache: { dir: path.join(dir, "cache-c") },
      extraToml: "[limits]\npeer_rate_window_secs = 1",
    });
  }, 120_000);

  afterAll(async () => {
    await nodeC.stop();
    await Promise.all([dripper.stop(), good.stop(), resetter.stop()]);
  });

  it("row 2: a peer dripping a NAR is cut and the download continues from the next provider, for every client", async () => {
    const url = await narUrlOf(nodeC, slow.storePath);
    const first = httpRequest(url, { agent: false });
    await sleep(300);
    // A later client joins the download, which must not stay stuck on the dripper.
    const second = httpRequest(url, { agent: false });
    const [a, b] = await Promise.all([first, second]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(sha256(a.body)).toBe(sha256(slow.nar));
    expect(sha256(b.body)).toBe(sha256(slow.nar));
    expect(dripper.requests.some((r) => r.url.includes("/nar/"))).toBe(true);
    const ranged = good.requests.filter((r) => r.url.includes("/nar/"));
    expect(ranged.length).toBeGreaterThan(0);
    const metrics = await metricsOf(nodeC);
    expect(sample(metrics, `irisd_peer_slow_total{peer="${dripper.url}"}`)).toBeGreaterThanOrEqual(
      1,
    );
    const lines = nodeC.logs().filter((l) => l.cause === `slow:${dripper.url}`);
    expect(lines).toHaveLength(1);
  }, 120_000);

  it("row 9: a peer failing before any NAR header is a 502 with the reason, not an empty reply", async () => {
    const url = await narUrlOf(nodeC, resetting.storePath);
    const res = await httpRequest(url, { agent: false });
    expect(res.status).toBe(502);
    expect(res.body.toString("utf8")).toMatch(/cannot fetch the NAR of .*resetting/);
    expect(nodeC.logs().filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe("a damaged NAR cache entry", () => {
  let fixture: SignedClosureStore;
  let nodeB: IrisdProcess;
  let cacheDir: string;
  let storeCRoot: string;

  async function entryOf(storePath: string): Promise<string | undefined> {
    const hashPart = hashPartOf(storePath);
    const names = await readdir(cacheDir);
    const name = names.find((n) => n.startsWith(hashPart) && n.endsWith(".entry"));
    return name === undefined ? undefined : path.join(cacheDir, name);
  }

  /** Flips one byte of the entry's NAR (its last bytes: the header and narinfo come first). */
  async function damage(file: string): Promise<void> {
    const { size } = await stat(file);
    const handle = await open(file, "r+");
    try {
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, size - 20);
      byte[0] = (byte[0] ?? 0) ^ 0xff;
      await handle.write(byte, 0, 1, size - 20);
    } finally {
      await handle.close();
    }
  }

  function startC(): Promise<IrisdProcess> {
    return startIrisd({
      storeRoot: storeCRoot,
      peers: [nodeB.url],
      trustedKeys: [fixture.keys.publicKey],
      cache: { dir: cacheDir },
    });
  }

  beforeAll(async () => {
    fixture = await signedClosureStore(dir, "abuse-cache", { storeName: "b2" });
    nodeB = await startIrisd({ storeRoot: fixture.store.root });
    cacheDir = path.join(dir, "cache-c2");
    storeCRoot = await smallStore("c2");
  }, 120_000);

  it("row 6: after a restart, a damaged entry is never served: hashed on first use, removed, fetched again", async () => {
    const { top } = fixture.closure;
    const nodeC = await startC();
    const first = await httpRequest(await narUrlOf(nodeC, top));
    expect(first.status).toBe(200);
    const file = await waitFor("the NAR in C's cache", () => entryOf(top));
    await nodeC.stop();
    await damage(file);

    const again = await startC();
    // Asked by a peer first: a damaged entry is not offered.
    const local = await httpRequest(`${again.url}/local/${hashPartOf(top)}.narinfo`);
    expect(local.status).toBe(404);
    const res = await httpRequest(await narUrlOf(again, top));
    expect(res.status).toBe(200);
    expect(sha256(res.body)).toBe(sha256(await nixDump(top)));
    expect(again.logs().some((l) => l.msg.startsWith("NAR cache: entry failed verification"))).toBe(
      true,
    );
    const metrics = await metricsOf(again);
    expect(
      sample(metrics, 'irisd_nar_cache_evictions_total{reason="corrupt"}'),
    ).toBeGreaterThanOrEqual(1);
    await again.stop();
  }, 120_000);

  it("row 6: the background scrub removes a damaged entry nobody asked for", async () => {
    const { top } = fixture.closure;
    const file = await waitFor("the NAR in C's cache again", () => entryOf(top));
    await damage(file);
    const nodeC = await startC();
    await waitFor("the scrub to remove the damaged entry", async () =>
      (await entryOf(top)) === undefined ? true : undefined,
    );
    // The summary comes once every entry is checked, after the damaged one is gone.
    const done = await waitFor("the scrub's summary", () =>
      nodeC.logs().find((l) => l.msg === "NAR cache: scrub done"),
    );
    expect(done.removed).toBe(1);
    await nodeC.stop();
  }, 120_000);
});
