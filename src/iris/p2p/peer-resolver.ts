/**
 * The resolvers of the peer-to-peer layer, after the local store in the
 * chain:
 *
 * - `createCacheResolver`: NARs in the NAR cache, with the narinfo they
 *   were verified against. Marked `local`: cached NARs are offered to
 *   peers on `/local/...` (and listed in `/bloom`), so a path fetched once
 *   into a fleet can spread from any host that holds it.
 * - `createPeerResolver`: asks the peers (`PeerSet.lookup`), remembers the
 *   verified answers for `ANSWER_TTL_MS` (Nix asks HEAD, then GET, then
 *   the NAR), and streams NARs through `NarFetcher` with every peer that
 *   answered the same NAR hash as a provider to fail over to.
 *
 * Read-ahead. Nix asks for one path at a time: `nix copy` and substitution
 * walk the closure narinfo by narinfo, then fetch the NARs one by one, each
 * request waiting for the one before. Through this daemon every request
 * costs a round trip to a peer on top, and for the many small paths of a
 * closure that round trip is most of the time. So once a client's narinfo
 * was answered from peers:
 *   - the narinfos of its references that this host does not hold are
 *     looked up too, and theirs in turn (the closure, as Nix will walk
 *     it), at most `READ_AHEAD_LOOKUPS` at a time and `READ_AHEAD_QUEUE`
 *     waiting; the answers wait in the answer cache for Nix's request;
 *   - its NAR, when at most `readAheadNarBytes`, is downloaded (verified and
 *     cached as usual), at most `READ_AHEAD_NARS` at a time, because Nix
 *     asks for the NAR of nearly every narinfo it asks for.
 * The cost when Nix does not come back for them (a query such as
 * `nix path-info`, or references the client already holds): one small
 * narinfo request per reference, and small NARs in the cache.
 */

import { open, type FileHandle } from "node:fs/promises";
import { pipeline } from "node:stream/promises";

import { OgygiaError, hasErrorCode } from "../../core/index.js";
import { parseStorePath } from "../../nix/index.js";
import { SMALL_NAR_BYTES, type CacheEntry, type NarCache } from "./nar-cache.js";
import type { FetchSpec, NarFetcher, NarSource } from "./nar-fetch.js";
import type { P2pMetrics } from "./metrics.js";
import { contentCheckFor, renderPeerNarInfo } from "./peer-narinfo.js";
import {
  LOOKUP_DEADLINE_MS,
  type Peer,
  type PeerAnswer,
  type PeerSet,
  type VerifiedNarInfo,
} from "./peers.js";
import type { PathResolver, ServedNar, ServedNarInfo } from "../http/index.js";

/** How long a verified peer answer is reused (narinfo HEAD, GET and the NAR). */
export const ANSWER_TTL_MS = 30_000;
/** Read-ahead narinfo lookups running at once. */
export const READ_AHEAD_LOOKUPS = 8;
/** Read-ahead NAR downloads running at once. */
export const READ_AHEAD_NARS = 4;
/** Read-ahead work waiting to run, beyond which more is dropped. */
export const READ_AHEAD_QUEUE = 4096;
/** Default largest NAR downloaded ahead of Nix's request for it. */
export const READ_AHEAD_NAR_BYTES = 1024 * 1024;
const MAX_ANSWERS = 16_384;
const CACHE_READ_CHUNK = 1024 * 1024;

/** Throws the error for a cache entry whose file vanished. */
function vanished(cache: NarCache, entry: CacheEntry): never {
  cache.drop(entry);
  throw new OgygiaError(
    "ERR_OGYGIA_IRISD",
    `the cached NAR of ${entry.storePath} vanished (evicted or removed)`,
  );
}

/** Opens an entry's file; a file gone is dropped from the cache and an error. */
async function openEntry(cache: NarCache, entry: CacheEntry): Promise<FileHandle> {
  try {
    return await open(cache.entryPath(entry), "r");
  } catch (err) {
    if (!hasErrorCode(err, "ENOENT")) throw err;
    return vanished(cache, entry);
  }
}

/** A small entry's NAR read whole (and then kept in memory); undefined for a larger one. */
async function readSmallEntry(cache: NarCache, entry: CacheEntry): Promise<Buffer | undefined> {
  if (entry.size > SMALL_NAR_BYTES) return undefined;
  const handle = await openEntry(cache, entry);
  try {
    const nar = Buffer.allocUnsafe(entry.size);
    const { bytesRead } = await handle.read(nar, 0, entry.size, entry.offset);
    if (bytesRead !== entry.size) {
      cache.drop(entry);
      throw new OgygiaError(
        "ERR_OGYGIA_IRISD",
        `the cache entry of ${entry.storePath} is short: ${bytesRead} of ${entry.size} NAR bytes`,
      );
    }
    cache.keepNarBytes(entry, nar);
    return nar;
  } finally {
    await handle.close();
  }
}

/** NARs and narinfos from the NAR cache. */
export function createCacheResolver(cache: NarCache, metrics?: P2pMetrics): PathResolver {
  return {
    name: "cache",
    local: true,
    narInfo(hashPart): ServedNarInfo | undefined {
      const entry = cache.get(hashPart);
      if (entry === undefined) return undefined;
      cache.touch(entry);
      return { storePath: entry.storePath, body: entry.narInfo, source: "cache" };
    },
    nar(hashPart, narHash): ServedNar | undefined {
      const entry = cache.get(hashPart);
      if (entry?.narHash !== narHash) return undefined;
      cache.touch(entry);
      metrics?.cacheHit();
      return {
        storePath: entry.storePath,
        narSize: entry.size,
        narHash,
        source: "cache",
        async send(out, range) {
          const bytes = cache.narBytes(entry) ?? (await readSmallEntry(cache, entry));
          if (bytes !== undefined) {
            out.end(
              range === undefined ? bytes : bytes.subarray(range.start, range.start + range.length),
            );
            return;
          }
          const handle = await openEntry(cache, entry);
          try {
            const { size } = await handle.stat();
            if (size !== entry.offset + entry.size) {
              cache.drop(entry);
              throw new OgygiaError(
                "ERR_OGYGIA_IRISD",
                `the cache entry of ${entry.storePath} has ${size} bytes, not ${entry.offset + entry.size}`,
              );
            }
            const start = entry.offset + (range?.start ?? 0);
            const length = range === undefined ? entry.size : range.length;
            const stream = handle.createReadStream({
              start,
              end: start + length - 1,
              highWaterMark: CACHE_READ_CHUNK,
              autoClose: false,
            });
            await pipeline(stream, out);
          } finally {
            await handle.close();
          }
        },
      };
    },
    close() {
      cache.close();
    },
  };
}

interface PeerPath {
  hashPart: string;
  narHash: string;
  verdict: VerifiedNarInfo;
  body: Buffer;
  /** Peers that answered this NAR hash, first answer first. */
  providers: Peer[];
  expiresAt: number;
}

interface PeerSource extends NarSource {
  readonly peer: Peer;
}

export interface PeerResolverOptions {
  peers: PeerSet;
  fetcher: NarFetcher;
  storeDir: string;
  metrics?: P2pMetrics | undefined;
  now?: () => number;
  /**
   * Read-ahead (module comment): whether this host serves a hash part
   * itself (its store or the NAR cache), so it is not looked up ahead.
   * Without it, nothing is read ahead.
   */
  isLocal?: (hashPart: string) => boolean;
  /** Largest NAR downloaded ahead (default `READ_AHEAD_NAR_BYTES`; 0: none). */
  readAheadNarBytes?: number;
}

/** Runs queued tasks, at most `limit` at once; drops tasks beyond `capacity` waiting. */
function createTaskQueue(
  limit: number,
  capacity: number,
): (task: () => Promise<unknown>) => boolean {
  const waiting: (() => Promise<unknown>)[] = [];
  let running = 0;
  const next = (): void => {
    while (running < limit) {
      const task = waiting.shift();
      if (task === undefined) return;
      running += 1;
      // Read-ahead failures change nothing: the client's own request will ask again.
      void task()
        .catch(() => undefined)
        .finally(() => {
          running -= 1;
          next();
        });
    }
  };
  return (task) => {
    if (waiting.length >= capacity) return false;
    waiting.push(task);
    next();
    return true;
  };
}

/** Paths from peers; see the module comment. */
export function createPeerResolver(options: PeerResolverOptions): PathResolver {
  const { peers, fetcher, storeDir, metrics, isLocal } = options;
  const now = options.now ?? (() => performance.now());
  const readAheadNarBytes = options.readAheadNarBytes ?? READ_AHEAD_NAR_BYTES;
  const answers = new Map<string, PeerPath>();
  const lookups = new Map<string, Promise<PeerPath | undefined>>();
  const queueLookup = createTaskQueue(READ_AHEAD_LOOKUPS, READ_AHEAD_QUEUE);
  const queueNar = createTaskQueue(READ_AHEAD_NARS, READ_AHEAD_QUEUE);
  /** Hash parts being read ahead (queued or running), so each is queued once at a time. */
  const readingAhead = new Set<string>();

  const remember = (hashPart: string, answer: PeerAnswer): void => {
    const t = now();
    const known = answers.get(hashPart);
    if (known !== undefined && known.expiresAt > t) {
      if (known.narHash === answer.verdict.narHash && !known.providers.includes(answer.peer)) {
        known.providers.push(answer.peer);
      }
      return;
    }
    if (answers.size >= MAX_ANSWERS) {
      const oldest = answers.keys().next();
      if (oldest.done !== true) answers.delete(oldest.value);
    }
    answers.delete(hashPart);
    answers.set(hashPart, {
      hashPart,
      narHash: answer.verdict.narHash,
      verdict: answer.verdict,
      body: renderPeerNarInfo(answer.verdict.info, storeDir),
      providers: [answer.peer],
      expiresAt: t + ANSWER_TTL_MS,
    });
  };

  /** The remembered answer for a hash part, while it is fresh. */
  const freshAnswer = (hashPart: string): PeerPath | undefined => {
    const known = answers.get(hashPart);
    return known !== undefined && known.expiresAt > now() ? known : undefined;
  };

  const resolve = (hashPart: string): Promise<PeerPath | undefined> | PeerPath | undefined => {
    if (peers.peers.length === 0) return undefined;
    const known = freshAnswer(hashPart);
    if (known !== undefined) return known;
    let pending = lookups.get(hashPart);
    if (pending === undefined) {
      pending = peers
        .lookup(hashPart, {
          deadline: now() + LOOKUP_DEADLINE_MS,
          onAnswer: (answer) => {
            remember(hashPart, answer);
          },
        })
        .then((answer) => (answer === undefined ? undefined : answers.get(hashPart)))
        .finally(() => {
          lookups.delete(hashPart);
        });
      lookups.set(hashPart, pending);
    }
    return pending;
  };

  const sourceOf = (path: PeerPath, peer: Peer): PeerSource => ({
    peer,
    label: peer.label,
    open: (offset, signal) =>
      peers.openNar(
        peer,
        { hashPart: path.hashPart, narHash: path.narHash, narSize: path.verdict.info.narSize },
        offset,
        signal,
      ),
  });

  const specOf = (path: PeerPath): FetchSpec => ({
    hashPart: path.hashPart,
    narHash: path.narHash,
    expectedHash: path.verdict.info.narHash,
    narSize: path.verdict.info.narSize,
    storePath: path.verdict.info.storePath,
    narInfo: path.body,
    contentCheck: contentCheckFor(path.verdict, path.verdict.info.storePath),
    async nextSource(tried) {
      const triedPeers = new Set(tried.map((s) => (s as PeerSource).peer));
      const pick = (): PeerSource | undefined => {
        const t = now();
        const peer = path.providers.find((p) => !triedPeers.has(p) && p.backoff.available(t));
        return peer === undefined ? undefined : sourceOf(path, peer);
      };
      const first = pick();
      if (first !== undefined) return first;
      // Ask the peers not tried yet: more providers of the same NAR, if any.
      await peers.lookup(path.hashPart, {
        deadline: now() + LOOKUP_DEADLINE_MS,
        skip: triedPeers,
        onAnswer: (answer) => {
          if (answer.verdict.narHash === path.narHash && !path.providers.includes(answer.peer)) {
            path.providers.push(answer.peer);
          }
        },
      });
      return pick();
    },
    onMismatch(sources) {
      for (const source of sources) {
        const peer = (source as PeerSource).peer;
        metrics?.rejection(peer.label, "nar-mismatch");
        path.providers = path.providers.filter((p) => p !== peer);
      }
      if (path.providers.length === 0 && answers.get(path.hashPart) === path) {
        answers.delete(path.hashPart);
      }
    },
    onSourceFailure(source) {
      const peer = (source as PeerSource).peer;
      path.providers = path.providers.filter((p) => p !== peer);
    },
  });

  const served = (path: PeerPath): ServedNarInfo => ({
    storePath: path.verdict.info.storePath,
    body: path.body,
    source: `peer ${path.providers[0]?.label ?? "?"}`,
  });

  const servedNar = (path: PeerPath, narHash: string): ServedNar | undefined => {
    if (path.narHash !== narHash) return undefined;
    return {
      storePath: path.verdict.info.storePath,
      narSize: path.verdict.info.narSize,
      narHash,
      source: "peers",
      send: (out, range) => fetcher.stream(specOf(path), out, range),
    };
  };

  /** Looks up, ahead of Nix, the references of `path` this host does not serve. */
  const readReferencesAhead = (path: PeerPath): void => {
    if (isLocal === undefined) return;
    for (const reference of path.verdict.info.references) {
      const { hashPart } = parseStorePath(reference, storeDir);
      if (hashPart === path.hashPart || readingAhead.has(hashPart)) continue;
      if (freshAnswer(hashPart) !== undefined || lookups.has(hashPart) || isLocal(hashPart)) {
        continue;
      }
      readingAhead.add(hashPart);
      const queued = queueLookup(async () => {
        try {
          const found = await resolve(hashPart);
          if (found !== undefined) {
            metrics?.readAhead("narinfo");
            readReferencesAhead(found);
          }
        } finally {
          readingAhead.delete(hashPart);
        }
      });
      if (!queued) readingAhead.delete(hashPart);
    }
  };

  /** After a client's narinfo: its small NAR and its references, ahead of Nix. */
  const readAhead = (path: PeerPath): void => {
    if (isLocal === undefined) return;
    if (path.verdict.info.narSize <= readAheadNarBytes) {
      queueNar(async () => {
        // Still the answer, and not cached meanwhile (by a client's own request).
        if (answers.get(path.hashPart) !== path || isLocal(path.hashPart)) return;
        if (await fetcher.prefetch(specOf(path))) metrics?.readAhead("nar");
      });
    }
    readReferencesAhead(path);
  };

  const answer = (path: PeerPath): ServedNarInfo => {
    readAhead(path);
    return served(path);
  };

  return {
    name: "peers",
    local: false,
    narInfo(hashPart) {
      const found = resolve(hashPart);
      if (found instanceof Promise) return found.then((p) => (p === undefined ? p : answer(p)));
      return found === undefined ? undefined : answer(found);
    },
    nar(hashPart, narHash) {
      const found = resolve(hashPart);
      if (found instanceof Promise) {
        return found.then((p) => (p === undefined ? p : servedNar(p, narHash)));
      }
      return found === undefined ? undefined : servedNar(found, narHash);
    },
    async close() {
      await fetcher.abortAll();
      await peers.close();
    },
  };
}
