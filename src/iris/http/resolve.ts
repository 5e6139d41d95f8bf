/**
 * The lookup pipeline: an ordered chain of resolvers, each able to answer
 * "what is the narinfo for this hash part" and "stream me this NAR". The
 * local store is the first (and, for now, only) resolver; the peer-to-peer
 * layer adds a NAR cache and the peers behind it. A resolver marked `local`
 * answers for this host's own data and may be asked on the peer-only
 * `/local/...` endpoints; the others are consulted only for clients.
 *
 * Resolvers may answer synchronously (the local store does: the database
 * reader is synchronous) and the chain keeps that fast path free of
 * promises; a resolver that returns a promise is awaited.
 */

import type { Writable } from "node:stream";

/** A narinfo ready to send. */
export interface ServedNarInfo {
  readonly storePath: string;
  /** The narinfo text, its `URL` pointing at this server's `nar/...`. */
  readonly body: Buffer;
  /** Which resolver answered (`local`, later `cache` or a peer), for logs. */
  readonly source: string;
}

/** A byte range of a NAR: `length` bytes from `start`. */
export interface ByteRange {
  start: number;
  length: number;
}

/** A NAR ready to stream. */
export interface ServedNar {
  readonly storePath: string;
  readonly narSize: number;
  /** nix32 of the NAR's SHA-256, as in the URL. */
  readonly narHash: string;
  readonly source: string;
  /**
   * Sends the NAR (or `range` of it) into `out` and ends it. Returns (a NAR
   * sent in one write: no promise) or resolves once every byte was handed
   * to `out`; throws or rejects when the NAR cannot be produced in full
   * (the caller then aborts the response).
   */
  send(out: Writable, range: ByteRange | undefined): Promise<void> | void;
  /**
   * Resolves once the first bytes can flow (a download from peers started);
   * throws (an `HttpError`, 502 with the reason) when they never will, so
   * the client gets a status instead of a cut connection.
   */
  ready?(): Promise<void>;
}

type Maybe<T> = T | undefined | Promise<T | undefined>;

export interface PathResolver {
  readonly name: string;
  /** True when it answers from this host's own data (servable to peers). */
  readonly local: boolean;
  /** The narinfo for a store path hash part, if this resolver can serve it. */
  narInfo(hashPart: string): Maybe<ServedNarInfo>;
  /** The NAR named by `nar/<hashPart>-<narHash>.nar`, if it is still exactly that. */
  nar(hashPart: string, narHash: string): Maybe<ServedNar>;
  /** The NAR listing (`<hash>.ls`, Nix's JSON) of a path it serves, if it can make one. */
  listing?(hashPart: string): Maybe<Buffer>;
  close?(): void | Promise<void>;
}

export interface LookupOptions {
  /** Ask only `local` resolvers (the peer-only endpoints). */
  localOnly?: boolean;
}

/**
 * Compressed NARs beside the chain's (`[server] compression`): the narinfo
 * of a GET names the compressed file, `nar/<hash>-<nar hash>.nar<extension>`
 * serves it. Implemented by `src/iris/zstd`.
 */
export interface NarCompression {
  /** Appended to `.nar` in URLs (`.zst`). */
  readonly extension: string;
  /** The narinfo naming the compressed file (or `served` itself when it is not compressed). */
  narInfo(served: ServedNarInfo, hashPart: string, lookup: LookupOptions): Promise<ServedNarInfo>;
  /** The compressed file of the NAR the chain serves, as a NAR-like body (`narSize`: its size). */
  nar(hashPart: string, narHash: string, lookup: LookupOptions): Promise<ServedNar | undefined>;
}

/** The resolvers, asked in order; the first answer wins. */
export interface ResolverChain {
  readonly resolvers: readonly PathResolver[];
  narInfo(hashPart: string, options?: LookupOptions): Maybe<ServedNarInfo>;
  nar(hashPart: string, narHash: string, options?: LookupOptions): Maybe<ServedNar>;
  /** The first listing a resolver that makes listings has for the hash part. */
  listing(hashPart: string, options?: LookupOptions): Maybe<Buffer>;
  /** Closes the resolvers, the last first. */
  close(): Promise<void>;
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return value instanceof Promise;
}

function firstAnswer<T>(
  resolvers: readonly PathResolver[],
  localOnly: boolean,
  ask: (resolver: PathResolver) => Maybe<T>,
  from = 0,
): Maybe<T> {
  for (let i = from; i < resolvers.length; i++) {
    const resolver = resolvers[i];
    if (resolver === undefined || (localOnly && !resolver.local)) continue;
    const answer = ask(resolver);
    if (isPromise(answer)) {
      return answer.then((value) =>
        value !== undefined ? value : firstAnswer(resolvers, localOnly, ask, i + 1),
      );
    }
    if (answer !== undefined) return answer;
  }
  return undefined;
}

/** A chain over `resolvers`, in order. */
export function createResolverChain(resolvers: readonly PathResolver[]): ResolverChain {
  return {
    resolvers,
    narInfo(hashPart, options) {
      return firstAnswer(resolvers, options?.localOnly === true, (r) => r.narInfo(hashPart));
    },
    nar(hashPart, narHash, options) {
      return firstAnswer(resolvers, options?.localOnly === true, (r) => r.nar(hashPart, narHash));
    },
    listing(hashPart, options) {
      return firstAnswer(resolvers, options?.localOnly === true, (r) => r.listing?.(hashPart));
    },
    // Last first: a later resolver may still use an earlier one (the peers'
    // downloads, which `close` lets finish, store into the NAR cache).
    async close() {
      for (const resolver of [...resolvers].reverse()) await resolver.close?.();
    },
  };
}
