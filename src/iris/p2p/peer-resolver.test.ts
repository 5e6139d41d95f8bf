import { rmSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { Writable } from "node:stream";

import { describe, expect, it } from "vitest";

import { formatHash, type NarInfo } from "../../nix/index.js";
import type { NarCache } from "./nar-cache.js";
import type { FetchSpec, NarFetcher } from "./nar-fetch.js";
import {
  hashPartOf,
  narOfFile,
  openTestCache,
  putCacheEntry,
  signedInfo,
  testKey,
} from "../../../test/support/p2p.js";
import { createCacheResolver, createPeerResolver } from "./peer-resolver.js";
import type { Peer, PeerSet, VerifiedNarInfo } from "./peers.js";
import type { ServedNarInfo } from "../http/index.js";
import { tempDirSync } from "../../../test/support/temp.js";

const STORE = "/nix/store";
const { secret, trusted } = testKey("resolver-test-1");

/** A path with a NAR of `size` bytes referring to `references`. */
function pathInfo(name: string, size: number, references: NarInfo[] = []): NarInfo {
  const info = signedInfo(narOfFile(Buffer.alloc(size, name)), secret, name);
  return { ...info, references: references.map((r) => r.storePath) };
}

function verdict(info: NarInfo): VerifiedNarInfo {
  return {
    ok: true,
    info,
    file: { compression: "none" },
    narHash: formatHash(info.narHash, "nix32", false),
    signers: ["resolver-test-1"],
    contentAddressedOnly: false,
  };
}

const peer = { label: "http://peer" } as Peer;

/** Peers that hold `infos`, counting the lookups per hash part. */
function fakePeers(infos: NarInfo[]): PeerSet & { asked: string[] } {
  const byHash = new Map(infos.map((info) => [hashPartOf(info.storePath), info]));
  const asked: string[] = [];
  return {
    asked,
    peers: [peer],
    setUrls: () => ({ added: [], removed: [] }),
    lookup(hashPart, options) {
      asked.push(hashPart);
      const info = byHash.get(hashPart);
      if (info === undefined) return Promise.resolve(undefined);
      const answer = { peer, verdict: verdict(info) };
      options.onAnswer?.(answer);
      return Promise.resolve(answer);
    },
    providers: () => Promise.resolve([]),
    openNar: () => Promise.reject(new Error("not in this test")),
    failed: () => undefined,
    start: () => undefined,
    close: () => Promise.resolve(),
  };
}

/** A fetcher recording what it is asked to download ahead. */
function fakeFetcher(): NarFetcher & { prefetched: FetchSpec[] } {
  const prefetched: FetchSpec[] = [];
  return {
    prefetched,
    active: 0,
    stream: () => Promise.reject(new Error("not in this test")),
    flowing: () => Promise.reject(new Error("not in this test")),
    prefetch(spec) {
      prefetched.push(spec);
      return Promise.resolve(true);
    },
    abortAll: () => Promise.resolve(),
  };
}

/** Lets queued read-ahead work run (the fakes answer at once). */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
}

async function narInfoOf(
  resolver: ReturnType<typeof createPeerResolver>,
  info: NarInfo,
): Promise<ServedNarInfo | undefined> {
  return resolver.narInfo(hashPartOf(info.storePath));
}

describe("the peer resolver's read-ahead", () => {
  // top -> (a, local), a -> b; every NAR small except big's.
  const b = pathInfo("b", 1000);
  const a = pathInfo("a", 1000, [b]);
  const local = pathInfo("local", 1000);
  const big = pathInfo("big", 4096);
  const top = pathInfo("top", 1000, [a, local, big]);
  const localHash = hashPartOf(local.storePath);

  it("looks up the closure a client will walk and fetches the asked path's small NAR", async () => {
    const peers = fakePeers([top, a, b, local, big]);
    const fetcher = fakeFetcher();
    const resolver = createPeerResolver({
      peers,
      fetcher,
      storeDir: STORE,
      isLocal: (hashPart) => hashPart === localHash,
      readAheadNarBytes: 2048,
    });

    expect((await narInfoOf(resolver, top))?.storePath).toBe(top.storePath);
    await settle();
    // References and theirs, once each; never what this host serves itself.
    expect([...peers.asked].sort()).toEqual(
      [top, a, big, b].map((i) => hashPartOf(i.storePath)).sort(),
    );
    // Only the NAR of the narinfo the client asked for, and it is small.
    expect(fetcher.prefetched.map((s) => s.storePath)).toEqual([top.storePath]);

    // The client's next requests are answered without asking the peers again.
    expect((await narInfoOf(resolver, a))?.storePath).toBe(a.storePath);
    expect((await narInfoOf(resolver, b))?.storePath).toBe(b.storePath);
    expect(peers.asked).toHaveLength(4);
    await settle();
    // ... and now their small NARs are fetched ahead too; big's is too large.
    expect(await narInfoOf(resolver, big)).toBeDefined();
    await settle();
    expect(fetcher.prefetched.map((s) => s.storePath)).toEqual([
      top.storePath,
      a.storePath,
      b.storePath,
    ]);
  });

  it("reads nothing ahead without knowing what is local", async () => {
    const peers = fakePeers([top, a, b, local, big]);
    const fetcher = fakeFetcher();
    const resolver = createPeerResolver({ peers, fetcher, storeDir: STORE });
    expect(await narInfoOf(resolver, top)).toBeDefined();
    await settle();
    expect(peers.asked).toEqual([hashPartOf(top.storePath)]);
    expect(fetcher.prefetched).toEqual([]);
  });

  it("does not fetch ahead a NAR the host came to serve itself meanwhile", async () => {
    const peers = fakePeers([top, a, b, local, big]);
    const fetcher = fakeFetcher();
    const held = new Set([localHash]);
    const resolver = createPeerResolver({
      peers,
      fetcher,
      storeDir: STORE,
      isLocal: (hashPart) => held.has(hashPart),
    });
    const answer = resolver.narInfo(hashPartOf(a.storePath));
    // Cached by a client's own request before the read-ahead task runs.
    held.add(hashPartOf(a.storePath));
    expect(await answer).toBeDefined();
    await settle();
    expect(fetcher.prefetched).toEqual([]);
  });
});

describe("the cache resolver", () => {
  /** A cache in a fresh folder holding one entry for `nar`; `inMemory` hands the bytes to `store`. */
  async function cacheWith(
    nar: Buffer,
    inMemory: boolean,
  ): Promise<{ cache: NarCache; hashPart: string; narHash: string; dir: string }> {
    const dir = tempDirSync("cache-resolver");
    const cache = await openTestCache(dir, trusted);
    const { hashPart, narHash } = await putCacheEntry(cache, nar, signedInfo(nar, secret), {
      inMemory,
    });
    return { cache, hashPart, narHash, dir };
  }

  async function served(
    cache: NarCache,
    hashPart: string,
    narHash: string,
    range?: { start: number; length: number },
  ): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const out = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk);
        callback();
      },
    });
    const nar = await createCacheResolver(cache).nar(hashPart, narHash);
    if (nar === undefined) throw new Error("not served");
    await nar.send(out, range);
    return Buffer.concat(chunks);
  }

  const small = narOfFile(Buffer.alloc(5000, "s"));

  it("serves a small NAR stored with its bytes from memory, the file not read", async () => {
    const { cache, hashPart, narHash, dir } = await cacheWith(small, true);
    try {
      const entry = cache.get(hashPart);
      if (entry === undefined) throw new Error("not cached");
      await unlink(cache.entryPath(entry));
      expect((await served(cache, hashPart, narHash)).equals(small)).toBe(true);
      expect(
        (await served(cache, hashPart, narHash, { start: 100, length: 50 })).equals(
          small.subarray(100, 150),
        ),
      ).toBe(true);
    } finally {
      cache.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads a small NAR stored without its bytes whole once, then serves it from memory", async () => {
    const { cache, hashPart, narHash, dir } = await cacheWith(small, false);
    try {
      const entry = cache.get(hashPart);
      if (entry === undefined) throw new Error("not cached");
      expect(cache.narBytes(entry)).toBeUndefined();
      expect((await served(cache, hashPart, narHash)).equals(small)).toBe(true);
      expect(cache.narBytes(entry)?.equals(small)).toBe(true);
    } finally {
      cache.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("streams a large NAR from its file, never holding it in memory", async () => {
    const large = narOfFile(Buffer.alloc(1536 * 1024, "l"));
    const { cache, hashPart, narHash, dir } = await cacheWith(large, true);
    try {
      const entry = cache.get(hashPart);
      if (entry === undefined) throw new Error("not cached");
      expect((await served(cache, hashPart, narHash)).equals(large)).toBe(true);
      expect(cache.narBytes(entry)).toBeUndefined();
    } finally {
      cache.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
