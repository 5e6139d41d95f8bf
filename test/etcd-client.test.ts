/**
 * Our etcd client (src/fleet/etcd-client) against a real etcd: TLS with a
 * client certificate, authentication tokens (renewed after a restart), a
 * watch from a revision, compacted revisions, and failover from a dead or
 * hung endpoint to a live one. No assertion is on timing.
 */

import { execFileSync } from "node:child_process";
import net from "node:net";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import {
  EtcdClient,
  GrpcCode,
  GrpcError,
  type WatchChange,
} from "../src/fleet/etcd-client/index.js";
import { makeTlsFiles, startEtcd, tlsOptions, type EtcdServer } from "./helpers/etcd.js";
import { freePort, removeDir, tempDir, waitFor } from "./helpers/process.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);

function etcdctl(endpoint: string, ...args: string[]): string {
  return execFileSync("etcdctl", ["--endpoints", endpoint, ...args], {
    env: { ...process.env, ETCDCTL_API: "3" },
    encoding: "utf8",
  });
}

/** Rejects with the error `promise` rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<GrpcError> {
  const err = await promise.then(
    () => new Error("expected the call to fail"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GrpcError);
  return err as GrpcError;
}

const clients: EtcdClient[] = [];
function client(options: ConstructorParameters<typeof EtcdClient>[0]): EtcdClient {
  const created = new EtcdClient(options);
  clients.push(created);
  return created;
}

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

describe("the etcd client over plain http", () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd.stop();
  });

  it("delivers a watch's changes from a past revision, in order, then live ones", async () => {
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    const key = text("/watch/k");
    const revs: bigint[] = [];
    for (const v of ["one", "two", "three"]) {
      revs.push((await c.put({ key, value: text(v) })).header?.revision ?? 0n);
    }
    await c.deleteRange({ key });
    const seen: WatchChange[] = [];
    const watcher = c.watch(
      { key, startRevision: revs[1] },
      {
        onEvents: (events) => seen.push(...events),
        onCanceled: (err) => {
          throw err;
        },
      },
    );
    await waitFor("the replayed events", () => (seen.length >= 2 ? true : undefined));
    await c.put({ key, value: text("four") });
    await waitFor("the live event", () => (seen.length >= 4 ? true : undefined));
    watcher.cancel();
    expect(seen.map((e) => (e.deleted ? "delete" : str(e.value)))).toEqual([
      "two",
      "three",
      "delete",
      "four",
    ]);
    expect(seen[0]?.modRevision).toBe(revs[1]);
  });

  it("reports a compacted revision: cancels the watch and fails the read", async () => {
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    const key = text("/compact/k");
    const first = (await c.put({ key, value: text("a") })).header?.revision ?? 0n;
    const last = (await c.put({ key, value: text("b") })).header?.revision ?? 0n;
    etcdctl(etcd.endpoint, "compact", last.toString());

    const read = await failure(c.range({ key, revision: first }));
    expect(read.code).toBe(GrpcCode.OUT_OF_RANGE);
    expect(read.message).toContain("compacted");

    const canceled = await new Promise<{ err: GrpcError; compactRevision: bigint }>((resolve) => {
      c.watch(
        { key, startRevision: first },
        {
          onEvents: () => undefined,
          onCanceled: (err, compactRevision) => {
            resolve({ err, compactRevision });
          },
        },
      );
    });
    expect(canceled.compactRevision).toBe(last);
    expect(canceled.err.message).toContain("compacted");
  });

  it("reads through a live endpoint when the first one refuses connections", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const c = client({ endpoints: [dead, etcd.endpoint], timeoutMs: 5000 });
    await c.put({ key: text("/failover/dead"), value: text("ok") });
    expect(str((await c.range({ key: text("/failover/dead") })).kvs[0]?.value)).toBe("ok");
  });

  it("reads through a live endpoint when the first one accepts but never answers", async () => {
    // A TCP server that never speaks HTTP/2: the whole deadline would be
    // spent on it if it got more than its share.
    const sockets: net.Socket[] = [];
    const hung = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
    const address = hung.address() as net.AddressInfo;
    try {
      const c = client({
        endpoints: [`http://127.0.0.1:${address.port}`, etcd.endpoint],
        timeoutMs: 4000,
      });
      await c.put({ key: text("/failover/hung"), value: text("ok") });
      expect(str((await c.range({ key: text("/failover/hung") })).kvs[0]?.value)).toBe("ok");
    } finally {
      for (const socket of sockets) socket.destroy();
      hung.close();
    }
  });

  it("fails with UNAVAILABLE naming each endpoint when none answers", async () => {
    const dead = [`http://127.0.0.1:${await freePort()}`, `http://127.0.0.1:${await freePort()}`];
    const c = client({ endpoints: dead, timeoutMs: 2000 });
    const err = await failure(c.range({ key: text("x") }));
    expect(err.code).toBe(GrpcCode.UNAVAILABLE);
    for (const endpoint of dead) expect(err.message).toContain(endpoint);
  });

  it("keeps a lease alive and reports it gone once revoked", async () => {
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    const lease = await c.leaseGrant(30);
    expect(await c.leaseKeepAliveOnce(lease.ID)).toBeGreaterThan(0n);
    await c.leaseRevoke(lease.ID);
    expect(await c.leaseKeepAliveOnce(lease.ID)).toBe(0n);
    const err = await failure(c.leaseRevoke(lease.ID));
    expect(err.code).toBe(GrpcCode.NOT_FOUND);
  });
});

describe("the etcd client over TLS with a client certificate", () => {
  let etcd: EtcdServer;
  let dir: string;
  let files: ReturnType<typeof makeTlsFiles>;
  beforeAll(async () => {
    dir = await tempDir("etcd-tls");
    files = makeTlsFiles(dir);
    etcd = await startEtcd({ tls: files });
  });
  afterAll(async () => {
    await etcd.stop();
    await removeDir(dir);
  });

  it("reads and writes with the CA, certificate and key", async () => {
    expect(etcd.endpoint.startsWith("https://")).toBe(true);
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 10_000, tls: tlsOptions(files) });
    await c.put({ key: text("/tls/k"), value: text("secure") });
    expect(str((await c.range({ key: text("/tls/k") })).kvs[0]?.value)).toBe("secure");
  });

  it("is refused without a client certificate", async () => {
    const { ca } = tlsOptions(files);
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 3000, tls: { ca } });
    const err = await failure(c.range({ key: text("/tls/k") }));
    expect(err.code).toBe(GrpcCode.UNAVAILABLE);
  });

  it("is refused when it does not trust the server's CA", async () => {
    const { cert, key } = tlsOptions(files);
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 3000, tls: { cert, key } });
    const err = await failure(c.range({ key: text("/tls/k") }));
    expect(err.code).toBe(GrpcCode.UNAVAILABLE);
  });
});

describe("the etcd client with authentication", () => {
  let etcd: EtcdServer;
  const auth = { username: "root", password: "ogygia-root-pw" };
  beforeAll(async () => {
    etcd = await startEtcd();
    etcdctl(etcd.endpoint, "user", "add", `root:${auth.password}`);
    etcdctl(etcd.endpoint, "user", "grant-role", "root", "root");
    etcdctl(etcd.endpoint, "auth", "enable");
  });
  afterAll(async () => {
    // The helper's own client has no token: stopping does not need one.
    await etcd.stop();
  });

  it("sends its token with calls and streams", async () => {
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 10_000, auth });
    await c.put({ key: text("/auth/k"), value: text("v") });
    expect(str((await c.range({ key: text("/auth/k") })).kvs[0]?.value)).toBe("v");
    const lease = await c.leaseGrant(30);
    expect(await c.leaseKeepAliveOnce(lease.ID)).toBeGreaterThan(0n);
    let put: Promise<unknown> | undefined;
    const seen = await new Promise<string>((resolve, reject) => {
      const watcher = c.watch(
        { key: text("/auth/w") },
        {
          onConnected: () => {
            put = c.put({ key: text("/auth/w"), value: text("watched") });
          },
          onEvents: (events) => {
            watcher.cancel();
            resolve(str(events[0]?.value));
          },
          onCanceled: reject,
        },
      );
    });
    await put;
    expect(seen).toBe("watched");
  });

  it("is refused without credentials", async () => {
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 10_000 });
    const err = await failure(c.put({ key: text("/auth/k"), value: text("v") }));
    expect(err.code).not.toBe(GrpcCode.UNAVAILABLE);
    expect(err.message).toMatch(/user name is empty|permission denied/);
  });

  it("is refused with a wrong password", async () => {
    const c = client({
      endpoints: [etcd.endpoint],
      timeoutMs: 10_000,
      auth: { ...auth, password: "wrong" },
    });
    const err = await failure(c.range({ key: text("/auth/k") }));
    expect(err.message).toContain("authentication failed");
  });

  it("authenticates again when a restarted etcd no longer knows its token", async () => {
    const c = client({ endpoints: [etcd.endpoint], timeoutMs: 10_000, auth });
    await c.put({ key: text("/auth/restart"), value: text("before") });
    // Simple tokens live in etcd's memory: a restart forgets them.
    await etcd.pause();
    await etcd.resume();
    await waitFor("etcd to answer again", async () => {
      try {
        await c.put({ key: text("/auth/restart"), value: text("after") });
        return true;
      } catch (err) {
        if (err instanceof GrpcError && err.code === GrpcCode.UNAVAILABLE) return undefined;
        throw err;
      }
    });
    expect(str((await c.range({ key: text("/auth/restart") })).kvs[0]?.value)).toBe("after");
  });
});
