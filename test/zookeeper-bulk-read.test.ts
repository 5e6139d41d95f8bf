/**
 * The bulk ZooKeeper read behind `ogygia status` (`multiRead` over `ZkWire`)
 * against a real ZooKeeper: what it reads, what it does with nodes that
 * vanish mid-read, how many requests it keeps in flight, and how its calls
 * fail when the server freezes or goes away.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  connectZkSession,
  connectZkWire,
  readZooKeeperBulk,
  type ZkBulkReader,
  type ZkWire,
} from "../src/fleet/index.js";
import { sleep } from "./helpers/process.js";
import { startZooKeeper, type ZooKeeperServer } from "./helpers/zookeeper.js";

const REV = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0";
let counter = 0;

function newNamespace(): string {
  counter += 1;
  return `/bulk-${process.pid}-${counter}/versions`;
}

/** `host → field → value` as plain objects, for comparing snapshots. */
function plain(hosts: ReadonlyMap<string, ReadonlyMap<string, Uint8Array>>): unknown {
  return Object.fromEntries(
    [...hosts].map(([host, values]) => [
      host,
      Object.fromEntries(
        [...values].map(([field, value]) => [field, Buffer.from(value).toString()]),
      ),
    ]),
  );
}

/** Removes a node and everything under it. */
async function removeTree(endpoint: string, path: string): Promise<void> {
  const session = await connectZkSession([endpoint], 10_000);
  try {
    const remove = async (node: string): Promise<void> => {
      for (const child of (await session.getChildren(node)) ?? []) await remove(`${node}/${child}`);
      await session.remove(node);
    };
    await remove(path);
  } finally {
    session.close();
  }
}

describe("bulk ZooKeeper reads", () => {
  let server: ZooKeeperServer;
  let wire: ZkWire;

  beforeAll(async () => {
    server = await startZooKeeper();
    wire = await connectZkWire([server.endpoint], 10_000);
  });

  afterAll(async () => {
    wire.close();
    await server.stop();
  });

  it("reads every host's fleet fields, in batches, counting stray keys", async () => {
    const namespace = newNamespace();
    const entries: [string, string][] = [];
    const expected: Record<string, Record<string, string>> = {};
    for (let i = 0; i < 23; i++) {
      const host = `host${String(i).padStart(2, "0")}.example.com`;
      const fields = ["current", "booted", "nextboot", "alive", "reboot_required", "updated_at"]
        .filter((_, f) => (i + f) % 3 !== 0)
        .map((field): [string, string] => [field, `${field}-${i}`]);
      expected[host] = Object.fromEntries(fields);
      for (const [field, value] of fields) entries.push([`${namespace}/${host}/${field}`, value]);
    }
    // Two stray keys: an unknown field, and a node one level too deep.
    entries.push([`${namespace}/host00.example.com/colour`, "blue"]);
    entries.push([`${namespace}/host01.example.com/current/extra`, "x"]);
    // A host node without any field.
    entries.push([`${namespace}/empty.example.com/colour`, "red"]);
    expected["empty.example.com"] = {};
    await server.putMany(entries);

    const snapshot = await readZooKeeperBulk(wire, namespace, {
      hostsPerRequest: 4,
      batchesInFlight: 2,
    });
    expect(plain(snapshot.hosts)).toEqual(expected);
    expect([...snapshot.hosts.keys()]).toEqual(Object.keys(expected).sort());
    // colour on host00 and on empty; the deeper node is not a field of host01.
    expect(snapshot.strayKeys).toBe(2);
  });

  it("reads a namespace that does not exist as no hosts", async () => {
    const snapshot = await readZooKeeperBulk(wire, newNamespace());
    expect(snapshot.hosts.size).toBe(0);
    expect(snapshot.strayKeys).toBe(0);
  });

  it("keeps a host that vanished after the namespace was listed without values, and drops a field that vanished after its host was listed", async () => {
    const namespace = newNamespace();
    await server.putMany([
      [`${namespace}/gone.example.com/current`, REV],
      [`${namespace}/gone.example.com/booted`, REV],
      [`${namespace}/half.example.com/current`, REV],
      [`${namespace}/half.example.com/booted`, REV],
      [`${namespace}/stays.example.com/current`, REV],
    ]);
    let listings = 0;
    const reader: ZkBulkReader = {
      getChildrenMany: async (paths) => {
        const result = await wire.getChildrenMany(paths);
        listings += 1;
        if (listings === 1) await removeTree(server.endpoint, `${namespace}/gone.example.com`);
        if (listings === 2)
          await removeTree(server.endpoint, `${namespace}/half.example.com/booted`);
        return result;
      },
      getDataMany: (paths) => wire.getDataMany(paths),
    };
    const snapshot = await readZooKeeperBulk(reader, namespace);
    expect(listings).toBe(2);
    expect(plain(snapshot.hosts)).toEqual({
      "gone.example.com": {},
      "half.example.com": { current: REV },
      "stays.example.com": { current: REV },
    });
  });

  it("keeps at most the given number of requests in flight, each for at most the given hosts", async () => {
    const namespace = newNamespace();
    const entries: [string, string][] = [];
    for (let i = 0; i < 50; i++) {
      for (const field of ["current", "booted", "nextboot"]) {
        entries.push([`${namespace}/host${i}.example.com/${field}`, REV]);
      }
    }
    await server.putMany(entries);
    let inFlight = 0;
    let most = 0;
    const sizes: { kind: string; paths: number }[] = [];
    const track = async <T>(kind: string, paths: readonly string[], call: () => Promise<T>) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      sizes.push({ kind, paths: paths.length });
      try {
        return await call();
      } finally {
        inFlight -= 1;
      }
    };
    const reader: ZkBulkReader = {
      getChildrenMany: (paths) => track("children", paths, () => wire.getChildrenMany(paths)),
      getDataMany: (paths) => track("data", paths, () => wire.getDataMany(paths)),
    };
    const snapshot = await readZooKeeperBulk(reader, namespace, {
      hostsPerRequest: 7,
      batchesInFlight: 3,
    });
    expect(snapshot.hosts.size).toBe(50);
    expect([...snapshot.hosts.values()].every((values) => values.size === 3)).toBe(true);
    // Three workers start at once, and never more.
    expect(most).toBe(3);
    // The namespace, then 8 batches (7 hosts each, the last 1), each listed then read.
    expect(sizes[0]).toEqual({ kind: "children", paths: 1 });
    const listings = sizes.slice(1).filter((s) => s.kind === "children");
    const reads = sizes.filter((s) => s.kind === "data");
    expect(listings.map((s) => s.paths).sort((a, b) => a - b)).toEqual([1, 7, 7, 7, 7, 7, 7, 7]);
    expect(reads.map((s) => s.paths).sort((a, b) => a - b)).toEqual([
      3, 21, 21, 21, 21, 21, 21, 21,
    ]);
  });
});

describe("ZkWire when the server stops answering", () => {
  it("fails a call at its deadline on a frozen server, then refuses later calls", async () => {
    const server = await startZooKeeper();
    try {
      await server.put("/probe/value", "x");
      const wire = await connectZkWire([server.endpoint], 1500);
      try {
        expect((await wire.getDataMany(["/probe/value"]))[0]?.toString()).toBe("x");
        server.freeze();
        // SIGSTOP reaches every thread of the JVM soon, not at once.
        await sleep(300);
        await expect(wire.getDataMany(["/probe/value"])).rejects.toThrow(
          /no answer within 1500 ms/,
        );
        expect(wire.isLost).toBe(true);
        await expect(wire.getChildrenMany(["/probe"])).rejects.toThrow(/ZooKeeper session lost/);
      } finally {
        server.thaw();
        wire.close();
      }
    } finally {
      await server.stop();
    }
  });

  it("refuses calls at once after the server went away, instead of hanging", async () => {
    const server = await startZooKeeper();
    try {
      await server.put("/probe/value", "x");
      const wire = await connectZkWire([server.endpoint], 30_000);
      try {
        expect((await wire.getDataMany(["/probe/value"]))[0]?.toString()).toBe("x");
        await server.pause();
        // Not the 30 s deadline: the closed connection fails the call.
        await expect(wire.getDataMany(["/probe/value"])).rejects.toThrow(/ZooKeeper session lost/);
        expect(wire.isLost).toBe(true);
        await expect(wire.getChildrenMany(["/probe"])).rejects.toThrow(/ZooKeeper session lost/);
      } finally {
        wire.close();
      }
    } finally {
      await server.stop();
    }
  });

  it("gives up connecting within the timeout when nothing listens", async () => {
    const server = await startZooKeeper();
    const endpoint = server.endpoint;
    await server.stop();
    await expect(connectZkWire([endpoint], 1000)).rejects.toThrow(
      /ZooKeeper session lost|no answer/,
    );
  });
});
