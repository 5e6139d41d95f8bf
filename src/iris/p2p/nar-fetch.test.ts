import { rmSync } from "node:fs";
import http from "node:http";
import { readdir } from "node:fs/promises";
import { Writable } from "node:stream";

import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { formatHash, type NarInfo } from "../../nix/index.js";
import type { NarCache } from "./nar-cache.js";
import { createNarFetcher, type FetchSpec, type NarFetcher, type NarSource } from "./nar-fetch.js";
import { createP2pMetrics } from "./metrics.js";
import {
  hashPartOf,
  narOfFile,
  openTestCache,
  signedInfo,
  testKey,
  QUIET_LOG,
} from "../../../test/support/p2p.js";
import { renderPeerNarInfo } from "./peer-narinfo.js";
import { describeFailure, peerBase } from "./peer-http.js";
import { pooledGet } from "./peer-stream.js";
import { peerSlabs } from "./slabs.js";
import { tempDirSync } from "../../../test/support/temp.js";

const STORE = "/nix/store";
const { secret, trusted } = testKey("fetch-test-1");

let dir: string;
let cache: NarCache;
let fetcher: NarFetcher;

async function setUp(memoryNarBytes: number): Promise<void> {
  dir = tempDirSync("nar-fetch");
  cache = await openTestCache(dir, trusted);
  fetcher = createNarFetcher({ cache, log: QUIET_LOG, memoryNarBytes });
}

afterEach(() => {
  cache.close();
  rmSync(dir, { recursive: true, force: true });
});

// A NAR of a bit over 200 KB, so it arrives in several chunks.
const contents = Buffer.alloc(200_000);
for (let i = 0; i < contents.length; i++) contents[i] = (i * 7919) % 251;
const nar = narOfFile(contents);
const info = signedInfo(nar, secret);

interface Source extends NarSource {
  opens: number[];
}

/** A provider from memory: 16 KiB chunks from `offset`, optionally dying, lying or stalling. */
function source(
  label: string,
  options: { dieAfter?: number; corruptAt?: number; stallAtEnd?: Promise<void> } = {},
): Source {
  const opens: number[] = [];
  return {
    label,
    opens,
    open(offset) {
      opens.push(offset);
      const bytes = Buffer.from(nar);
      if (options.corruptAt !== undefined)
        bytes[options.corruptAt] = (bytes[options.corruptAt] ?? 0) ^ 1;
      return Promise.resolve(
        (async function* chunks() {
          for (let position = offset; position < bytes.length; position += 16_384) {
            if (options.dieAfter !== undefined && position >= options.dieAfter) {
              throw new Error(`${label} died`);
            }
            await new Promise((resolve) => setImmediate(resolve));
            yield bytes.subarray(position, Math.min(bytes.length, position + 16_384));
          }
          await options.stallAtEnd;
        })(),
      );
    },
  };
}

function specFor(
  sources: NarSource[],
  narInfo: NarInfo = info,
  hooks: Partial<FetchSpec> = {},
): FetchSpec {
  return {
    hashPart: hashPartOf(narInfo.storePath),
    narHash: formatHash(narInfo.narHash, "nix32", false),
    expectedHash: narInfo.narHash,
    narSize: narInfo.narSize,
    storePath: narInfo.storePath,
    narInfo: renderPeerNarInfo(narInfo, STORE),
    nextSource: (tried) => Promise.resolve(sources[tried.length]),
    ...hooks,
  };
}

/** A client: collects what it is sent. */
function client(): Writable & { bytes(): Buffer; ended: boolean } {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  }) as Writable & { bytes(): Buffer; ended: boolean };
  out.bytes = () => Buffer.concat(chunks);
  Object.defineProperty(out, "ended", { get: () => out.writableEnded });
  return out;
}

async function settledCache(): Promise<string[]> {
  for (let i = 0; i < 200 && fetcher.active > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return readdir(dir);
}

describe.each([
  ["held in memory", 64 * 1024 * 1024],
  ["written to a file as it comes", 0],
])("fetching a NAR through peers, %s", (_mode, memoryNarBytes) => {
  beforeEach(async () => {
    await setUp(memoryNarBytes);
  });

  it("streams it to the client and keeps it in the cache once verified", async () => {
    const out = client();
    await fetcher.stream(specFor([source("a")]), out, undefined);
    expect(out.bytes().equals(nar)).toBe(true);
    expect(out.ended).toBe(true);
    await settledCache();
    const entry = cache.get(hashPartOf(info.storePath));
    expect(entry?.size).toBe(nar.length);
    // A small NAR downloaded into memory stays there for the cache to serve.
    if (entry === undefined) throw new Error("not cached");
    expect(cache.narBytes(entry)?.equals(nar) ?? false).toBe(memoryNarBytes > 0);
  });

  it("downloads ahead of any client, once, and a client then joins or finds it cached", async () => {
    const a = source("a");
    const spec = specFor([a]);
    const prefetching = fetcher.prefetch(spec);
    // A client arriving meanwhile joins the download instead of starting another.
    const out = client();
    await fetcher.stream(spec, out, undefined);
    expect(await prefetching).toBe(true);
    expect(await fetcher.prefetch(spec)).toBe(false);
    expect(a.opens).toEqual([0]);
    expect(out.bytes().equals(nar)).toBe(true);
    await settledCache();
    expect(cache.get(hashPartOf(info.storePath))?.size).toBe(nar.length);
  });

  it("counts a cache miss for a client's download, not for a read-ahead one", async () => {
    const registry = new Registry();
    const counted = createNarFetcher({
      cache,
      log: QUIET_LOG,
      memoryNarBytes,
      metrics: createP2pMetrics(registry),
    });
    const misses = async (): Promise<string | undefined> =>
      /^irisd_nar_cache_misses_total (\d+)$/m.exec(await registry.metrics())?.[1];
    expect(await counted.prefetch(specFor([source("a")]))).toBe(true);
    expect(await misses()).toBe("0");
    const otherNar = narOfFile(Buffer.from("another"));
    const other = signedInfo(otherNar, secret);
    const spec = {
      ...specFor([], other),
      nextSource: () =>
        Promise.resolve({
          label: "b",
          open: () =>
            Promise.resolve(
              (async function* one() {
                await Promise.resolve();
                yield otherNar;
              })(),
            ),
        }),
    };
    await counted.stream(spec, client(), undefined);
    expect(await misses()).toBe("1");
    // The client has its bytes before the NAR is committed to the cache: the
    // folder is removed after this test only once nothing writes into it.
    await vi.waitFor(() => {
      expect(counted.active).toBe(0);
    });
  });

  it("fetches once for concurrent clients, each getting the whole NAR or its range", async () => {
    const a = source("a");
    const spec = specFor([a]);
    const [one, two, part] = [client(), client(), client()];
    await Promise.all([
      fetcher.stream(spec, one, undefined),
      fetcher.stream(spec, two, undefined),
      fetcher.stream(spec, part, { start: 1000, length: 5000 }),
    ]);
    expect(a.opens).toEqual([0]);
    expect(one.bytes().equals(nar)).toBe(true);
    expect(two.bytes().equals(nar)).toBe(true);
    expect(part.bytes().equals(nar.subarray(1000, 6000))).toBe(true);
  });

  it("holds the last byte back until the whole NAR verified", async () => {
    let release = (): void => undefined;
    const stall = new Promise<void>((resolve) => {
      release = resolve;
    });
    const out = client();
    const done = fetcher.stream(specFor([source("a", { stallAtEnd: stall })]), out, undefined);
    for (let i = 0; i < 400 && out.bytes().length < nar.length - 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(out.bytes().length).toBe(nar.length - 1);
    expect(out.ended).toBe(false);
    release();
    await done;
    expect(out.bytes().equals(nar)).toBe(true);
  });

  it("cuts every client short and caches nothing when the bytes do not match", async () => {
    const liar = source("liar", { corruptAt: 100_000 });
    const mismatches: string[] = [];
    const spec = specFor([liar, source("honest")], info, {
      onMismatch: (sources) => mismatches.push(...sources.map((s) => s.label)),
    });
    const out = client();
    await expect(fetcher.stream(spec, out, undefined)).rejects.toMatchObject({
      code: "ERR_OGYGIA_NIX_NAR",
    });
    expect(out.bytes().length).toBeLessThan(nar.length);
    expect(out.ended).toBe(false);
    expect(mismatches).toEqual(["liar"]);
    expect(await settledCache()).toEqual([]);
    expect(cache.get(hashPartOf(info.storePath))).toBeUndefined();
  });

  it("continues from the next provider at the byte reached when one dies", async () => {
    const dying = source("dying", { dieAfter: 65_536 });
    const next = source("next");
    const failed: string[] = [];
    const spec = specFor([dying, next], info, {
      onSourceFailure: (s) => failed.push(s.label),
    });
    const out = client();
    await fetcher.stream(spec, out, undefined);
    expect(out.bytes().equals(nar)).toBe(true);
    expect(failed).toEqual(["dying"]);
    expect(next.opens).toEqual([65_536]);
  });

  it("fails cleanly when every provider dies, or none is offered", async () => {
    const spec = specFor([source("a", { dieAfter: 16_384 }), source("b", { dieAfter: 32_768 })]);
    const out = client();
    await expect(fetcher.stream(spec, out, undefined)).rejects.toThrow(
      /every provider failed \(a, b\)/,
    );
    expect(out.ended).toBe(false);
    await expect(fetcher.stream(specFor([]), client(), undefined)).rejects.toThrow(
      /no peer offers it/,
    );
    expect(await settledCache()).toEqual([]);
  });

  it("starts afresh for a request made right after a download failed", async () => {
    // A slow disk: the failed download's cleanup is still running when the next request comes.
    const discard = cache.discard.bind(cache);
    cache.discard = async (temp) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      await discard(temp);
    };
    const failing = fetcher.stream(specFor([source("dead", { dieAfter: 0 })]), client(), undefined);
    await expect(failing).rejects.toThrow(/every provider failed \(dead\)/);
    // Asked in the same tick the first client saw the failure: it must not join it.
    const retry = source("alive");
    const out = client();
    await fetcher.stream(specFor([retry]), out, undefined);
    expect(out.bytes().equals(nar)).toBe(true);
    expect(retry.opens).toEqual([0]);
  });
});

describe("a large NAR written to a file", () => {
  beforeEach(async () => {
    await setUp(0);
  });

  it("serves a client that falls behind the memory window from the file", async () => {
    const bigContents = Buffer.alloc(12 * 1024 * 1024);
    for (let i = 0; i < bigContents.length; i += 4096) bigContents.writeUInt32LE(i, i);
    const bigNar = narOfFile(bigContents);
    const bigInfo = signedInfo(bigNar, secret, "big");
    const source: NarSource = {
      label: "fast",
      open: (offset) =>
        Promise.resolve(
          (async function* chunks() {
            for (let p = offset; p < bigNar.length; p += 65_536) {
              await new Promise((resolve) => setImmediate(resolve));
              yield bigNar.subarray(p, Math.min(bigNar.length, p + 65_536));
            }
          })(),
        ),
    };
    const received: Buffer[] = [];
    // Takes 64 KiB, then stalls until the download is far ahead.
    let stalled = false;
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        received.push(chunk);
        if (!stalled) {
          stalled = true;
          setTimeout(callback, 300);
        } else callback();
      },
    });
    await fetcher.stream(
      {
        hashPart: hashPartOf(bigInfo.storePath),
        narHash: formatHash(bigInfo.narHash, "nix32", false),
        expectedHash: bigInfo.narHash,
        narSize: bigInfo.narSize,
        storePath: bigInfo.storePath,
        narInfo: renderPeerNarInfo(bigInfo, STORE),
        nextSource: (tried) => Promise.resolve(tried.length === 0 ? source : undefined),
      },
      slow,
      undefined,
    );
    expect(Buffer.concat(received).equals(bigNar)).toBe(true);
    await settledCache();
    expect(cache.get(hashPartOf(bigInfo.storePath))?.size).toBe(bigNar.length);
  });
});

/** Listens on a free port of 127.0.0.1; resolves with its URL. */
async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
}

/** GETs `url`; when `lag` is given, reads nothing for that long first. */
function download(url: string, lag = 0): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const chunks: Buffer[] = [];
        if (lag > 0) {
          res.pause();
          setTimeout(() => res.resume(), lag);
        }
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          resolve(Buffer.concat(chunks));
        });
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

describe.each([
  ["held in memory", 64 * 1024 * 1024],
  ["written to a file as it comes", 0],
])("a NAR read into pooled slabs, %s", (_mode, memoryNarBytes) => {
  beforeEach(async () => {
    await setUp(memoryNarBytes);
  });

  it("reaches every client intact, fast, slow or not a socket, and its slabs go back", async () => {
    const bigContents = Buffer.alloc(12 * 1024 * 1024);
    for (let i = 0; i < bigContents.length; i += 4)
      bigContents.writeUInt32LE((i * 2654435761) >>> 0, i);
    const bigNar = narOfFile(bigContents);
    const bigInfo = signedInfo(bigNar, secret, "pooled");
    const peer = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": bigNar.length });
      res.end(bigNar);
    });
    const peerUrl = await listen(peer);
    const source: NarSource = {
      label: "pooled",
      open: async (offset, signal) => {
        const response = await pooledGet(peerBase(peerUrl), {
          path: "nar",
          headers: {},
          timeoutMs: 5000,
          bodyIdleMs: 5000,
          signal,
          expectBytes: bigNar.length - offset,
          slabs: peerSlabs,
          connectTimeoutMs: 500,
          describe: describeFailure,
        });
        return response.body;
      },
    };
    const spec: FetchSpec = {
      ...specFor([], bigInfo),
      nextSource: (tried) => Promise.resolve(tried.length === 0 ? source : undefined),
    };
    // C: its clients get ServerResponses, as in irisd.
    const front = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": bigNar.length });
      void fetcher.stream(spec, res, undefined).catch(() => res.destroy());
    });
    const frontUrl = await listen(front);
    try {
      const plain = client();
      const [fast, slow] = await Promise.all([
        download(frontUrl),
        download(frontUrl, 300),
        fetcher.stream(spec, plain, undefined),
      ]);
      expect(fast.equals(bigNar)).toBe(true);
      expect(slow.equals(bigNar)).toBe(true);
      expect(plain.bytes().equals(bigNar)).toBe(true);
      await settledCache();
      expect(cache.get(hashPartOf(bigInfo.storePath))?.size).toBe(bigNar.length);
      // A late client, from the cache file or a new download, gets the same bytes.
      expect((await download(frontUrl)).equals(bigNar)).toBe(true);
      for (let i = 0; i < 100 && peerSlabs.live > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(peerSlabs.live).toBe(0);
    } finally {
      front.closeAllConnections();
      peer.closeAllConnections();
      await new Promise((resolve) => front.close(resolve));
      await new Promise((resolve) => peer.close(resolve));
    }
  });
});
