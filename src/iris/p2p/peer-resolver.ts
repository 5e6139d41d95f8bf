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
import { Writable } from "node:stream";
import { finished } from "node:stream/promises";

import { OgygiaError, errorMessage, hasErrorCode } from "../../core/index.js";
import { narListingSink, parseStorePath, renderNarListing } from "../../nix/index.js";
import { SMALL_NAR_BYTES, type CacheEntry, type NarCache } from "./nar-cache.js";
import { sendFileRange, type FetchSpec, type NarFetcher, type NarSource } from "./nar-fetch.js";
import type { P2pMetrics } from "./metrics.js";
import { contentCheckFor, renderPeerNarInfo, type PeerNarFile } from "./peer-narinfo.js";
import {
  LOOKUP_DEADLINE_MS,
  type Peer,
  type PeerAnswer,
  type PeerSet,
  type VerifiedNarInfo,
} from "./peers.js";
import { HttpError, type PathResolver, type ServedNar, type ServedNarInfo } from "../http/index.js";

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
/** Nix's NAR listing of a NAR, read through `send` (the NAR is parsed as it streams). */
export async function listingOfServedNar(served: ServedNar): Promise<Buffer> {
  const sink = narListingSink(served.storePath);
  const out = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      try {
        sink.write(chunk);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
  await served.send(out, undefined);
  await finished(out);
  return renderNarListing(sink.end());
}

export function createCacheResolver(cache: NarCache, metrics?: P2pMetrics): PathResolver {
  /** An entry recovered at start is hashed before its first use (`scrub.ts`); a bad one is a miss. */
  const checked = <T>(
    entry: CacheEntry,
    answer: () => T | undefined,
  ): T | undefined | Promise<T | undefined> =>
    entry.verified === false
      ? cache.verify(entry).then((ok) => (ok ? answer() : undefined))
      : answer();
  const resolver: PathResolver = {
    name: "cache",
    local: true,
    narInfo(hashPart) {
      const entry = cache.get(hashPart);
      if (entry === undefined) return undefined;
      return checked(entry, (): ServedNarInfo => {
        cache.touch(entry);
        return { storePath: entry.storePath, body: entry.narInfo, source: "cache" };
      });
    },
    nar(hashPart, narHash) {
      const entry = cache.get(hashPart);
      if (entry?.narHash !== narHash) return undefined;
      return checked(entry, () => servedEntry(entry, narHash));
    },
    async listing(hashPart) {
      const entry = cache.get(hashPart);
      if (entry === undefined) return undefined;
      const served = await resolver.nar(hashPart, entry.narHash);
      return served === undefined ? undefined : listingOfServedNar(served);
    },
    close() {
      cache.close();
    },
  };
  const servedEntry = (entry: CacheEntry, narHash: string): ServedNar => {
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
          await sendFileRange(handle, out, start, length);
        } finally {
          await handle.close();
        }
      },
    };
  };
  return resolver;
}

interface PeerPath {
  hashPart: string;
  narHash: string;
  verdict: VerifiedNarInfo;
  body: Buffer;
  /** Peers that answered this NAR hash, first answer first. */
  providers: Peer[];
  /** How each provider serves the NAR (compressed or not). */
  files: Map<Peer, PeerNarFile>;
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
  return new PeerResolver(options);
}

function served(path: PeerPath): ServedNarInfo {
  return {
    storePath: path.verdict.info.storePath,
    body: path.body,
    source: `peer ${path.providers[0]?.label ?? "?"}`,
  };
}

function withoutPeer(path: PeerPath, source: NarSource): void {
  const peer = (source as PeerSource).peer;
  path.providers = path.providers.filter((p) => p !== peer);
}

/**
 * The peers' answers remembered for `ANSWER_TTL_MS`, the lookups in flight
 * (one per hash part for all clients) and the read-ahead queues.
 */
class PeerResolver implements PathResolver {
  readonly name = "peers";
  readonly local = false;
  private readonly peers: PeerSet;
  private readonly fetcher: NarFetcher;
  private readonly now: () => number;
  private readonly readAheadNarBytes: number;
  private readonly answers = new Map<string, PeerPath>();
  private readonly lookups = new Map<string, Promise<PeerPath | undefined>>();
  private readonly queueLookup = createTaskQueue(READ_AHEAD_LOOKUPS, READ_AHEAD_QUEUE);
  private readonly queueNar = createTaskQueue(READ_AHEAD_NARS, READ_AHEAD_QUEUE);
  /** Hash parts being read ahead (queued or running), so each is queued once at a time. */
  private readonly readingAhead = new Set<string>();

  constructor(private readonly options: PeerResolverOptions) {
    this.peers = options.peers;
    this.fetcher = options.fetcher;
    this.now = options.now ?? (() => performance.now());
    this.readAheadNarBytes = options.readAheadNarBytes ?? READ_AHEAD_NAR_BYTES;
  }

  narInfo(hashPart: string): Promise<ServedNarInfo | undefined> | ServedNarInfo | undefined {
    const found = this.resolve(hashPart);
    if (found instanceof Promise) {
      return found.then((p) => (p === undefined ? p : this.answer(p)));
    }
    return found === undefined ? undefined : this.answer(found);
  }

  nar(hashPart: string, narHash: string): Promise<ServedNar | undefined> | ServedNar | undefined {
    const found = this.resolve(hashPart);
    if (found instanceof Promise) {
      return found.then((p) => (p === undefined ? p : this.servedNar(p, narHash)));
    }
    return found === undefined ? undefined : this.servedNar(found, narHash);
  }

  async close(): Promise<void> {
    await this.fetcher.abortAll();
    await this.peers.close();
  }

  private remember(hashPart: string, answer: PeerAnswer): void {
    const t = this.now();
    const answers = this.answers;
    const known = answers.get(hashPart);
    if (known !== undefined && known.expiresAt > t) {
      if (known.narHash === answer.verdict.narHash && !known.providers.includes(answer.peer)) {
        known.providers.push(answer.peer);
        known.files.set(answer.peer, answer.verdict.file);
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
      body: renderPeerNarInfo(answer.verdict.info, this.options.storeDir),
      providers: [answer.peer],
      files: new Map([[answer.peer, answer.verdict.file]]),
      expiresAt: t + ANSWER_TTL_MS,
    });
  }

  /** The remembered answer for a hash part, while it is fresh. */
  private freshAnswer(hashPart: string): PeerPath | undefined {
    const known = this.answers.get(hashPart);
    return known !== undefined && known.expiresAt > this.now() ? known : undefined;
  }

  private resolve(hashPart: string): Promise<PeerPath | undefined> | PeerPath | undefined {
    if (this.peers.peers.length === 0) return undefined;
    const known = this.freshAnswer(hashPart);
    if (known !== undefined) return known;
    let pending = this.lookups.get(hashPart);
    if (pending === undefined) {
      pending = this.peers
        .lookup(hashPart, {
          deadline: this.now() + LOOKUP_DEADLINE_MS,
          onAnswer: (answer) => {
            this.remember(hashPart, answer);
          },
        })
        .then((answer) => (answer === undefined ? undefined : this.answers.get(hashPart)))
        .finally(() => {
          this.lookups.delete(hashPart);
        });
      this.lookups.set(hashPart, pending);
    }
    return pending;
  }

  private sourceOf(path: PeerPath, peer: Peer): PeerSource {
    const nar = {
      hashPart: path.hashPart,
      narHash: path.narHash,
      narSize: path.verdict.info.narSize,
      storePath: path.verdict.info.storePath,
      file: path.files.get(peer),
    };
    return {
      peer,
      label: peer.label,
      open: (offset, signal) => this.peers.openNar(peer, nar, offset, signal),
    };
  }

  private specOf(path: PeerPath): FetchSpec {
    return {
      hashPart: path.hashPart,
      narHash: path.narHash,
      expectedHash: path.verdict.info.narHash,
      narSize: path.verdict.info.narSize,
      storePath: path.verdict.info.storePath,
      narInfo: path.body,
      contentCheck: contentCheckFor(path.verdict, path.verdict.info.storePath),
      nextSource: (tried) => this.nextSource(path, tried),
      onMismatch: (sources) => {
        this.mismatch(path, sources);
      },
      onSourceFailure: (source) => {
        withoutPeer(path, source);
      },
    };
  }

  /** A provider of `path` not tried yet; else asks the other peers for more. */
  private async nextSource(
    path: PeerPath,
    tried: readonly NarSource[],
  ): Promise<PeerSource | undefined> {
    const triedPeers = new Set(tried.map((s) => (s as PeerSource).peer));
    const pick = (): PeerSource | undefined => {
      const t = this.now();
      const peer = path.providers.find((p) => !triedPeers.has(p) && p.backoff.available(t));
      return peer === undefined ? undefined : this.sourceOf(path, peer);
    };
    const first = pick();
    if (first !== undefined) return first;
    // Ask the peers not tried yet: more providers of the same NAR, if any.
    await this.peers.lookup(path.hashPart, {
      deadline: this.now() + LOOKUP_DEADLINE_MS,
      skip: triedPeers,
      onAnswer: (answer) => {
        if (answer.verdict.narHash === path.narHash && !path.providers.includes(answer.peer)) {
          path.providers.push(answer.peer);
          path.files.set(answer.peer, answer.verdict.file);
        }
      },
    });
    return pick();
  }

  /** The NAR from `sources` did not verify: they are no providers of it. */
  private mismatch(path: PeerPath, sources: readonly NarSource[]): void {
    for (const source of sources) {
      this.options.metrics?.rejection((source as PeerSource).peer.label, "nar-mismatch");
      withoutPeer(path, source);
    }
    if (path.providers.length === 0 && this.answers.get(path.hashPart) === path) {
      this.answers.delete(path.hashPart);
    }
  }

  private servedNar(path: PeerPath, narHash: string): ServedNar | undefined {
    if (path.narHash !== narHash) return undefined;
    return {
      storePath: path.verdict.info.storePath,
      narSize: path.verdict.info.narSize,
      narHash,
      source: "peers",
      send: (out, range) => this.fetcher.stream(this.specOf(path), out, range),
      ready: () =>
        this.fetcher.flowing(this.specOf(path)).catch((err: unknown) => {
          throw new HttpError(502, errorMessage(err));
        }),
    };
  }

  private answer(path: PeerPath): ServedNarInfo {
    this.readAhead(path);
    return served(path);
  }

  /** After a client's narinfo: its small NAR and its references, ahead of Nix. */
  private readAhead(path: PeerPath): void {
    const { isLocal, metrics } = this.options;
    if (isLocal === undefined) return;
    if (path.verdict.info.narSize <= this.readAheadNarBytes) {
      this.queueNar(async () => {
        // Still the answer, and not cached meanwhile (by a client's own request).
        if (this.answers.get(path.hashPart) !== path || isLocal(path.hashPart)) return;
        if (await this.fetcher.prefetch(this.specOf(path))) metrics?.readAhead("nar");
      });
    }
    this.readReferencesAhead(path);
  }

  /** Looks up, ahead of Nix, the references of `path` this host does not serve. */
  private readReferencesAhead(path: PeerPath): void {
    const { isLocal, storeDir } = this.options;
    if (isLocal === undefined) return;
    for (const reference of path.verdict.info.references) {
      const { hashPart } = parseStorePath(reference, storeDir);
      if (hashPart === path.hashPart || this.readingAhead.has(hashPart)) continue;
      if (
        this.freshAnswer(hashPart) !== undefined ||
        this.lookups.has(hashPart) ||
        isLocal(hashPart)
      ) {
        continue;
      }
      this.readingAhead.add(hashPart);
      const queued = this.queueLookup(() => this.readOneAhead(hashPart));
      if (!queued) this.readingAhead.delete(hashPart);
    }
  }

  private async readOneAhead(hashPart: string): Promise<void> {
    try {
      const found = await this.resolve(hashPart);
      if (found !== undefined) {
        this.options.metrics?.readAhead("narinfo");
        this.readReferencesAhead(found);
      }
    } finally {
      this.readingAhead.delete(hashPart);
    }
  }
}
