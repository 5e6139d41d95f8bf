import { randomBytes } from "node:crypto";

import { afterEach, describe, expect, it } from "vitest";

import { encodeNix32, hashFromDigest, type PathInfo, type StoreDb } from "../../nix/index.js";
import { parseBloom } from "./bloom.js";
import { createLocalIndex, type LocalIndex, type LocalIndexOptions } from "./local-index.js";
import { QUIET_LOG } from "../../../test/support/p2p.js";

/** A store database in memory: paths, signatures, and a data_version that moves on writes. */
function fakeStore() {
  const paths = new Map<string, PathInfo>();
  let version = 0;
  let seen = 0;
  const db = {
    location: { storeDir: "/nix/store", root: "/" },
    dbPath: "/fake",
    queryAllValidPaths: () => [...paths.keys()].sort(),
    queryPathInfo: (p: string) => paths.get(p),
    dataVersion: () => version,
    hasChanged() {
      const changed = version !== seen;
      seen = version;
      return changed;
    },
  } as unknown as StoreDb;
  return {
    db,
    add(signed: boolean): string {
      const storePath = `/nix/store/${encodeNix32(randomBytes(20))}-p`;
      paths.set(storePath, {
        storePath,
        narHash: hashFromDigest("sha256", randomBytes(32)),
        narSize: 100,
        references: [],
        deriver: undefined,
        registrationTime: 0,
        ultimate: false,
        sigs: signed ? ["k:sig"] : [],
        ca: undefined,
      });
      version += 1;
      return storePath;
    },
    sign(storePath: string): void {
      const info = paths.get(storePath);
      if (info !== undefined) info.sigs = ["k:sig"];
      version += 1;
    },
    remove(storePath: string): void {
      paths.delete(storePath);
      version += 1;
    },
  };
}

const hashOf = (storePath: string): string => storePath.slice(11, 43);
const indexes: LocalIndex[] = [];

afterEach(() => {
  for (const index of indexes.splice(0)) index.close();
});

function start(db: StoreDb, options: Partial<LocalIndexOptions> = {}): LocalIndex {
  const index = createLocalIndex({
    db,
    canSign: false,
    falsePositiveRate: 0.01,
    log: QUIET_LOG,
    pollMs: 10,
    rebuildDelayMs: 30,
    ...options,
  });
  indexes.push(index);
  return index;
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("the local bloom index", () => {
  it("is built from the serveable paths, and published in the wire format", async () => {
    const store = fakeStore();
    const signed = store.add(true);
    const unsigned = store.add(false);
    const index = start(store.db, { extraHashParts: () => ["0".repeat(32)] });
    expect(index.snapshot()).toBeUndefined();
    await index.whenReady();
    const snapshot = index.snapshot();
    if (snapshot === undefined) throw new Error("not ready");
    const filter = parseBloom(snapshot.bytes, { maxBytes: 1 << 20 });
    expect(filter.has(hashOf(signed))).toBe(true);
    expect(index.has(hashOf(unsigned))).toBe(false);
    expect(index.has("0".repeat(32))).toBe(true);
    expect(snapshot.etag).toMatch(/^"[^"]+"$/);
  });

  it("with a signing key, indexes every valid path", async () => {
    const store = fakeStore();
    const unsigned = store.add(false);
    const index = start(store.db, { canSign: true });
    await index.whenReady();
    expect(index.has(hashOf(unsigned))).toBe(true);
  });

  it("notices added paths, and paths signed later, by itself", async () => {
    const store = fakeStore();
    const index = start(store.db);
    await index.whenReady();
    const before = index.snapshot()?.etag;
    const added = store.add(true);
    await until("the new path", () => index.has(hashOf(added)));
    expect(index.snapshot()?.etag).not.toBe(before);
    const later = store.add(false);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(index.has(hashOf(later))).toBe(false);
    store.sign(later);
    await until("the signed path", () => index.has(hashOf(later)));
  });

  it("rebuilds without deleted paths, after a delay", async () => {
    const store = fakeStore();
    const gone = store.add(true);
    const kept = store.add(true);
    const index = start(store.db);
    await index.whenReady();
    store.remove(gone);
    await until("the rebuild", () => !index.has(hashOf(gone)));
    expect(index.has(hashOf(kept))).toBe(true);
  });

  it("rebuilds with more room when it holds more paths than it was sized for", async () => {
    const store = fakeStore();
    const cached = new Set<string>();
    const index = start(store.db, { extraHashParts: () => cached });
    await index.whenReady();
    const first = parseBloom(index.snapshot()?.bytes ?? Buffer.alloc(0), { maxBytes: 1 << 20 });
    for (let i = 0; i < first.capacity + 10; i++) {
      const hashPart = encodeNix32(randomBytes(20));
      cached.add(hashPart);
      index.addHashPart(hashPart);
    }
    await until("a larger filter", () => {
      const bytes = index.snapshot()?.bytes;
      return (
        bytes !== undefined && parseBloom(bytes, { maxBytes: 1 << 24 }).capacity > first.capacity
      );
    });
  });

  it("rescans named paths at once, saying which are missing or not serveable", async () => {
    const store = fakeStore();
    const index = start(store.db, { pollMs: 60_000 });
    await index.whenReady();
    const signed = store.add(true);
    const unsigned = store.add(false);
    const missing = `/nix/store/${encodeNix32(randomBytes(20))}-missing`;
    expect(await index.rescan([signed, unsigned, missing])).toEqual({
      indexed: 1,
      added: 1,
      notServeable: [unsigned],
      missing: [missing],
    });
    expect(index.has(hashOf(signed))).toBe(true);
    expect(await index.rescan([signed])).toMatchObject({ added: 0, indexed: 1 });
    store.sign(unsigned);
    const another = store.add(true);
    expect(await index.rescan([])).toEqual({ indexed: 3, added: 2, notServeable: [], missing: [] });
    expect(index.has(hashOf(another))).toBe(true);
  });

  it("forgets evicted cache entries at the next rebuild", async () => {
    const store = fakeStore();
    const extra = new Set(["1".repeat(32)]);
    const index = start(store.db, { extraHashParts: () => extra });
    await index.whenReady();
    index.addHashPart("2".repeat(32));
    extra.add("2".repeat(32));
    expect(index.has("2".repeat(32))).toBe(true);
    extra.delete("1".repeat(32));
    index.removed();
    await until("the rebuild", () => !index.has("1".repeat(32)));
    expect(index.has("2".repeat(32))).toBe(true);
  });
});
