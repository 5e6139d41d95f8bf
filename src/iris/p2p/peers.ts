/**
 * The peers: their bloom filters, their health, and asking them for paths.
 *
 * Filters: each peer's `GET /bloom` is fetched at start and refreshed
 * (conditionally, `If-None-Match`) every `[bloom] peer_ttl_secs`. A peer
 * whose filter is not known yet (never fetched, still building its index:
 * 503, or no `/bloom` at all) is asked directly, so a reachable peer is
 * never skipped for want of a filter.
 *
 * Lookup (`lookup`): within one deadline (`LOOKUP_DEADLINE_MS`),
 *   1. ask, in parallel, every available peer whose filter matches the
 *      hash part (or that has no filter) for `/local/<hash>.narinfo`;
 *   2. if none of them has it, revalidate the filters older than
 *      `REVALIDATE_AFTER_MS` (one conditional request per peer, shared by
 *      all lookups meanwhile) and ask the peers whose new filter matches.
 * The first answer that verifies (`verifyPeerNarInfo`) wins; later ones
 * are reported too (they are more providers for the NAR). When the
 * deadline passes, the answer is "nobody has it".
 *
 * Health: a connection error, a timeout or a 5xx puts the peer in backoff
 * (1 s doubling to 30 s); while in backoff it is skipped entirely, so a
 * down peer costs nothing. The background refresh probes it again when its
 * backoff expires; any answer brings it back.
 */

import type { IncomingHttpHeaders } from "node:http";

import { BackoffGate, errorMessage, type BackoffOptions } from "../../core/index.js";
import { errorFields, type Logger } from "../../log/index.js";
import { isHashPart, type TrustedKeys } from "../../nix/index.js";
import { DEFAULT_MAX_BLOOM_BYTES, bloomEtag, parseBloom, type BloomFilter } from "./bloom.js";
import { continuationOf, rangeHeaders } from "./continuation.js";
import type { P2pMetrics, PeerRequestKind } from "./metrics.js";
import {
  describeFailure,
  peerBase,
  type PeerBase,
  type PeerHttp,
  type PeerResponse,
} from "./peer-http.js";
import { verifyPeerNarInfo, type PeerNarFile, type PeerNarInfoVerdict } from "./peer-narinfo.js";
import { isPooledBody, type PooledBody } from "./peer-stream.js";
import { peerSlabs } from "./slabs.js";
import { decompressedNar } from "./zstd-nar.js";

/** A peer that failed: left alone for 1 s, 2 s, 4 s, ... up to 30 s, ±20 %. */
const PEER_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, jitter: 0.2 };
/** One request to a peer: headers (and a narinfo body) within this time. */
export const PEER_REQUEST_TIMEOUT_MS = 1500;
/** A narinfo lookup through peers answers within this time (the documented bound is 2 s). */
export const LOOKUP_DEADLINE_MS = 1800;
/** A filter older than this is revalidated before a lookup answers "nobody has it". */
export const REVALIDATE_AFTER_MS = 2000;
/** Background filter refreshes may take this long (large filters). */
const FILTER_REFRESH_TIMEOUT_MS = 10_000;
/** A NAR body may pause this long between chunks before the provider counts as failed. */
export const NAR_IDLE_TIMEOUT_MS = 10_000;
const MAX_NARINFO_BYTES = 64 * 1024;
const TICK_MS = 1000;
/** Warnings about one peer's bad answers: at most one per reason in this window. */
const REJECTION_LOG_WINDOW_MS = 10_000;

export interface Peer {
  readonly base: PeerBase;
  /** Redacted base URL. */
  readonly label: string;
  readonly backoff: BackoffGate;
  filter: BloomFilter | undefined;
  etag: string | undefined;
  /** When the filter was last fetched or confirmed (performance.now()). */
  checkedAt: number;
  /** No filter request before this time (503 Retry-After, or no /bloom at all). */
  filterWaitUntil: number;
  refreshing: Promise<void> | undefined;
  up: boolean;
}

export type VerifiedNarInfo = Extract<PeerNarInfoVerdict, { ok: true }>;

/** A NAR to fetch from a peer, and the file the peer serves it as (default: uncompressed). */
export interface PeerNar {
  hashPart: string;
  narHash: string;
  narSize: number;
  /** For messages: the store path. */
  storePath?: string;
  file?: PeerNarFile;
}

export interface PeerAnswer {
  peer: Peer;
  verdict: VerifiedNarInfo;
}

export interface LookupOptions {
  /** performance.now() time by which the lookup answers. */
  deadline: number;
  /** Every verified answer, the first included, as it arrives (until the deadline). */
  onAnswer?: (answer: PeerAnswer) => void;
  /** Peers not to ask. */
  skip?: ReadonlySet<Peer>;
}

export interface PeerSet {
  /** The peers now (a new array after each `setUrls` that changed them). */
  readonly peers: readonly Peer[];
  /**
   * Replaces the peers by those of `urls`: peers still listed keep their
   * filter and health, new ones are asked for their filter at once (when
   * started), the others are dropped (requests under way finish).
   */
  setUrls(urls: readonly string[]): { added: string[]; removed: string[] };
  /** The first verified answer for the hash part, or undefined (see the module comment). */
  lookup(hashPart: string, options: LookupOptions): Promise<PeerAnswer | undefined>;
  /** Every available peer's verified answer for the hash part, within the deadline. */
  providers(hashPart: string, deadline: number): Promise<PeerAnswer[]>;
  /** The NAR from `offset` on, from one peer (throws when it cannot start). */
  openNar(
    peer: Peer,
    nar: PeerNar,
    offset: number,
    signal: AbortSignal,
  ): Promise<AsyncIterable<Buffer>>;
  /** Records that a peer failed mid-transfer. */
  failed(peer: Peer, kind: PeerRequestKind, err: unknown): void;
  /** Starts the background filter refreshes. */
  start(): void;
  close(): Promise<void>;
}

export interface PeerSetOptions {
  urls: readonly string[];
  http: PeerHttp;
  trusted: TrustedKeys;
  storeDir: string;
  peerTtlMs: number;
  log: Logger;
  metrics?: P2pMetrics | undefined;
  /** Monotonic clock in ms (tests). */
  now?: () => number;
}

/**
 * NARs with more bytes left than this are read into pooled slabs
 * (`peer-stream.ts`): one connection each, a round trip more than undici's
 * kept-alive ones, worth it where the bytes are. Smaller ones (little
 * garbage) keep the kept-alive connections.
 */
const POOLED_NAR_BYTES = 1024 * 1024;

function retryAfterMs(headers: IncomingHttpHeaders): number {
  const value = Number(headers["retry-after"]);
  const seconds = Number.isFinite(value) ? value : 1;
  return Math.min(30, Math.max(1, seconds)) * 1000;
}

/** Peers from the configuration; see the module comment. */
export function createPeerSet(options: PeerSetOptions): PeerSet {
  return new Peers(options);
}

function newPeer(url: string): Peer {
  const base = peerBase(url);
  return {
    base,
    label: base.label,
    backoff: new BackoffGate(PEER_BACKOFF),
    filter: undefined,
    etag: undefined,
    checkedAt: -Infinity,
    filterWaitUntil: 0,
    refreshing: undefined,
    up: true,
  };
}

function maybeHas(peer: Peer, hashPart: string): boolean {
  return peer.filter === undefined || peer.filter.has(hashPart);
}

/** The peer set: health, filters, lookups and NAR requests; lives until `close`. */
class Peers implements PeerSet {
  peers: Peer[];
  readonly now: () => number;
  private readonly http: PeerHttp;
  readonly log: Logger;
  private readonly metrics: P2pMetrics | undefined;
  private readonly lastWarned = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: PeerSetOptions) {
    this.http = options.http;
    this.log = options.log;
    this.metrics = options.metrics;
    this.now = options.now ?? (() => performance.now());
    this.peers = [];
    this.setUrls(options.urls);
  }

  setUrls(urls: readonly string[]): { added: string[]; removed: string[] } {
    const wanted = new Map<string, string>();
    for (const url of urls) {
      const key = peerBase(url).url;
      if (!wanted.has(key)) wanted.set(key, url);
    }
    const kept = this.peers.filter((peer) => wanted.has(peer.base.url));
    const removed = this.peers.filter((peer) => !wanted.has(peer.base.url)).map((p) => p.label);
    const known = new Set(kept.map((peer) => peer.base.url));
    const fresh = [...wanted].filter(([key]) => !known.has(key)).map(([, url]) => newPeer(url));
    if (fresh.length === 0 && removed.length === 0) return { added: [], removed: [] };
    this.peers = [...kept, ...fresh];
    for (const peer of fresh) {
      this.metrics?.peerUp(peer.label, true);
      // Started: fetch the newcomer's filter now rather than at the next tick.
      if (this.timer !== undefined) void this.refresh(peer, FILTER_REFRESH_TIMEOUT_MS);
    }
    return { added: fresh.map((p) => p.label), removed };
  }

  private succeeded(peer: Peer): void {
    if (!peer.up) {
      peer.up = true;
      this.metrics?.peerUp(peer.label, true);
      this.log.info({ peer: peer.label }, "peer reachable again");
    }
    peer.backoff.success();
  }

  readonly failed = (peer: Peer, kind: PeerRequestKind, err: unknown): void => {
    this.metrics?.peerRequest(peer.label, kind, "failure");
    const t = this.now();
    // Requests already under way when it first failed do not lengthen the backoff.
    if (!peer.backoff.available(t)) return;
    const delay = peer.backoff.failure(t);
    if (peer.up) {
      peer.up = false;
      this.metrics?.peerUp(peer.label, false);
      this.log.warn(
        { peer: peer.label, request: kind, reason: describeFailure(err), retryInMs: delay },
        "peer unreachable: skipped until it answers again",
      );
    } else {
      this.log.debug(
        { peer: peer.label, request: kind, reason: describeFailure(err) },
        "peer failed",
      );
    }
  };

  private rejected(peer: Peer, hashPart: string, reason: string, message: string): void {
    this.metrics?.peerRequest(peer.label, "narinfo", "rejected");
    this.metrics?.rejection(peer.label, reason);
    const key = `${peer.label}\n${reason}`;
    const t = this.now();
    const last = this.lastWarned.get(key);
    const fields = { peer: peer.label, hashPart, reason, detail: message };
    if (last !== undefined && t - last < REJECTION_LOG_WINDOW_MS) {
      this.log.debug(fields, "peer answer rejected");
      return;
    }
    this.lastWarned.set(key, t);
    this.log.warn(fields, "peer answer rejected");
  }

  private async request(
    peer: Peer,
    kind: PeerRequestKind,
    path: string,
    timeoutMs: number,
    headers?: Record<string, string>,
  ): Promise<PeerResponse | undefined> {
    try {
      return await this.http.request(peer.base, { path, timeoutMs, headers });
    } catch (err) {
      if (!this.closed) this.failed(peer, kind, err);
      return undefined;
    }
  }

  /** Asks one peer for its verified narinfo of `hashPart`. */
  async ask(
    peer: Peer,
    hashPart: string,
    deadline: number,
    kind: PeerRequestKind,
  ): Promise<PeerAnswer | undefined> {
    const timeoutMs = Math.min(PEER_REQUEST_TIMEOUT_MS, deadline - this.now());
    if (timeoutMs <= 0) return undefined;
    const res = await this.request(peer, kind, `local/${hashPart}.narinfo`, timeoutMs);
    if (res === undefined) return undefined;
    if (res.status !== 200) {
      res.discard();
      if (res.status >= 500) {
        this.failed(peer, kind, new Error(`status ${res.status}`));
      } else {
        this.succeeded(peer);
        this.metrics?.peerRequest(peer.label, kind, "miss");
      }
      return undefined;
    }
    let body: Buffer;
    try {
      body = await res.readBody(MAX_NARINFO_BYTES);
    } catch (err) {
      this.failed(peer, kind, err);
      return undefined;
    }
    this.succeeded(peer);
    return this.verify(peer, hashPart, body, kind);
  }

  private verify(
    peer: Peer,
    hashPart: string,
    body: Buffer,
    kind: PeerRequestKind,
  ): PeerAnswer | undefined {
    const { trusted, storeDir } = this.options;
    const whence = `from ${peer.label}`;
    const verdict = verifyPeerNarInfo(body, { hashPart, trusted, storeDir, whence });
    if (!verdict.ok) {
      this.rejected(peer, hashPart, verdict.reason, verdict.message);
      return undefined;
    }
    this.metrics?.peerRequest(peer.label, kind, "ok");
    return { peer, verdict };
  }

  private async fetchFilter(peer: Peer, timeoutMs: number): Promise<void> {
    const headers: Record<string, string> = {};
    if (peer.etag !== undefined && peer.filter !== undefined) headers["if-none-match"] = peer.etag;
    const res = await this.request(peer, "bloom", "bloom", timeoutMs, headers);
    if (res === undefined) return;
    if (res.status === 200) {
      await this.takeFilter(peer, res);
      return;
    }
    res.discard();
    const t = this.now();
    if (res.status === 304 && peer.filter !== undefined) {
      peer.checkedAt = t;
      this.succeeded(peer);
      this.metrics?.peerRequest(peer.label, "bloom", "not-modified");
    } else if (res.status === 503 || res.status === 404) {
      // Reachable, but no filter (its index is still building, or it has no /bloom):
      // lookups ask it directly meanwhile.
      peer.filter = undefined;
      peer.etag = undefined;
      peer.checkedAt = t;
      peer.filterWaitUntil =
        t + (res.status === 503 ? retryAfterMs(res.headers) : this.options.peerTtlMs);
      this.succeeded(peer);
      this.metrics?.peerRequest(peer.label, "bloom", "miss");
    } else {
      this.failed(peer, "bloom", new Error(`GET /bloom answered ${res.status}`));
    }
  }

  /** Reads and parses a 200 answer to `GET /bloom`. */
  private async takeFilter(peer: Peer, res: PeerResponse): Promise<void> {
    let filter: BloomFilter;
    try {
      const bytes = await res.readBody(DEFAULT_MAX_BLOOM_BYTES);
      filter = parseBloom(bytes, { maxBytes: DEFAULT_MAX_BLOOM_BYTES, source: peer.label });
    } catch (err) {
      this.failed(peer, "bloom", err);
      return;
    }
    const etag = res.headers.etag;
    peer.filter = filter;
    peer.etag = typeof etag === "string" ? etag : bloomEtag(filter);
    peer.checkedAt = this.now();
    this.succeeded(peer);
    this.metrics?.peerRequest(peer.label, "bloom", "ok");
    this.log.debug(
      { peer: peer.label, paths: filter.count, bits: filter.bits },
      "peer filter updated",
    );
  }

  /** One filter request per peer at a time; waits at most until `deadline`. */
  refresh(peer: Peer, timeoutMs: number, deadline?: number): Promise<void> {
    peer.refreshing ??= this.fetchFilter(peer, timeoutMs)
      .catch((err: unknown) => {
        this.log.error(
          { peer: peer.label, ...errorFields(err) },
          "peer filter refresh failed (a bug)",
        );
      })
      .finally(() => {
        peer.refreshing = undefined;
      });
    if (deadline === undefined) return peer.refreshing;
    const wait = deadline - this.now();
    if (wait <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, wait);
      void peer.refreshing?.finally(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async lookup(hashPart: string, lookupOptions: LookupOptions): Promise<PeerAnswer | undefined> {
    const answer = await new Lookup(this, hashPart, lookupOptions).run();
    if (answer !== undefined) this.metrics?.lookup("hit");
    else this.metrics?.lookup(this.now() >= lookupOptions.deadline ? "deadline" : "miss");
    return answer;
  }

  async providers(hashPart: string, deadline: number): Promise<PeerAnswer[]> {
    const t = this.now();
    const answers = await Promise.all(
      this.peers
        .filter((p) => p.backoff.available(t))
        .map((p) => this.ask(p, hashPart, deadline, "providers")),
    );
    return answers.filter((a): a is PeerAnswer => a !== undefined);
  }

  async openNar(
    peer: Peer,
    nar: PeerNar,
    offset: number,
    signal: AbortSignal,
  ): Promise<AsyncIterable<Buffer>> {
    if (!isHashPart(nar.hashPart)) throw new Error(`openNar: bad hash part ${nar.hashPart}`);
    const file = nar.file;
    if (file?.compression === "zstd") return this.openZstdNar(peer, nar, file, offset, signal);
    const left = nar.narSize - offset;
    const pooled = left > POOLED_NAR_BYTES ? left : undefined;
    const res = await this.requestNar(peer, nar, offset, signal, ".nar", pooled);
    const plan = continuationOf({
      status: res.status,
      contentRange: res.headers["content-range"],
      contentLength: res.headers["content-length"],
      offset,
      size: nar.narSize,
    });
    if (!plan.ok) {
      res.discard();
      this.metrics?.peerRequest(peer.label, "nar", "miss");
      throw new Error(`peer ${peer.label}: cannot continue the NAR at ${offset}: ${plan.reason}`);
    }
    this.succeeded(peer);
    this.metrics?.peerRequest(peer.label, "nar", "ok");
    if (isPooledBody(res.body) && plan.skip === 0) return this.pooledNar(peer, res.body, signal);
    return this.narChunks(peer, res.body, plan.skip, signal);
  }

  /** A pooled body (`peer-stream.ts`) as is, with narChunks' bookkeeping at its end. */
  private pooledNar(peer: Peer, body: PooledBody, signal: AbortSignal): PooledBody {
    body.onEnd = (received, err) => {
      if (err !== undefined && !signal.aborted) this.failed(peer, "nar", err);
      this.metrics?.narBytes(peer.label, received);
    };
    return body;
  }

  /**
   * `GET /local/nar/...nar.zst` (whole: see `zstd-nar.ts`), decompressed as
   * it arrives, from decompressed byte `offset` on.
   */
  private async openZstdNar(
    peer: Peer,
    nar: PeerNar,
    file: Extract<PeerNarFile, { compression: "zstd" }>,
    offset: number,
    signal: AbortSignal,
  ): Promise<AsyncIterable<Buffer>> {
    const res = await this.requestNar(peer, nar, 0, signal, ".nar.zst");
    if (res.status !== 200) {
      res.discard();
      this.metrics?.peerRequest(peer.label, "nar", "miss");
      throw new Error(`peer ${peer.label}: the zstd NAR answered ${res.status}`);
    }
    this.succeeded(peer);
    this.metrics?.peerRequest(peer.label, "nar", "ok");
    return decompressedNar({
      body: this.narChunks(peer, res.body, 0, signal),
      offset,
      fileHash: file.fileHash,
      fileSize: file.fileSize,
      what: `${nar.storePath ?? nar.hashPart} from ${peer.label}`,
    });
  }

  /** `GET /local/nar/...` from `offset`; a failure to connect or a 5xx is the peer's failure. */
  private async requestNar(
    peer: Peer,
    nar: { hashPart: string; narHash: string },
    offset: number,
    signal: AbortSignal,
    extension = ".nar",
    /** For a NAR read into pooled slabs (`peer-stream.ts`): the bytes expected. */
    pooledBytes?: number,
  ): Promise<PeerResponse> {
    let res: PeerResponse;
    try {
      const request = {
        path: `local/nar/${nar.hashPart}-${nar.narHash}${extension}`,
        headers: extension === ".nar" ? rangeHeaders(offset, nar.narHash) : {},
        timeoutMs: PEER_REQUEST_TIMEOUT_MS,
        bodyIdleMs: NAR_IDLE_TIMEOUT_MS,
        signal,
      };
      const pooled =
        pooledBytes === undefined
          ? undefined
          : this.http.pooledGet?.(peer.base, {
              ...request,
              expectBytes: pooledBytes,
              slabs: peerSlabs,
            });
      res = await (pooled ?? this.http.request(peer.base, request));
    } catch (err) {
      if (!signal.aborted) this.failed(peer, "nar", err);
      throw err;
    }
    if (res.status >= 500) {
      res.discard();
      const err = new Error(`peer ${peer.label}: NAR request answered ${res.status}`);
      this.failed(peer, "nar", err);
      throw err;
    }
    return res;
  }

  /** The body's chunks after the first `skip` bytes; a failure mid-stream is the peer's. */
  private async *narChunks(
    peer: Peer,
    body: AsyncIterable<Buffer>,
    skip: number,
    signal: AbortSignal,
  ): AsyncGenerator<Buffer> {
    let received = 0;
    try {
      for await (const chunk of body) {
        received += chunk.length;
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        const rest = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        yield rest;
      }
    } catch (err) {
      // Died mid-stream (reset, stalled): a failure of the peer.
      if (!signal.aborted) this.failed(peer, "nar", err);
      throw err;
    } finally {
      // Counted once per response: the metric costs more than a chunk's bookkeeping.
      this.metrics?.narBytes(peer.label, received);
    }
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.tick();
    this.timer = setInterval(() => {
      this.tick();
    }, TICK_MS);
    this.timer.unref();
  }

  /** Refreshes the filters that are due, of the peers not in backoff. */
  private tick(): void {
    const t = this.now();
    for (const peer of this.peers) {
      if (peer.refreshing !== undefined || !peer.backoff.available(t)) continue;
      if (t < peer.filterWaitUntil) continue;
      const due = peer.filter === undefined || t - peer.checkedAt >= this.options.peerTtlMs;
      if (due) void this.refresh(peer, FILTER_REFRESH_TIMEOUT_MS);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.http.close().catch((err: unknown) => {
      this.log.debug({ err: errorMessage(err) }, "closing peer connections");
    });
  }
}

/**
 * One `lookup`: asks the peers whose filter matches, then (if none has it)
 * revalidates the stale filters and asks the new matches; settles with the
 * first verified answer, or undefined when all are done or the deadline passes.
 */
class Lookup {
  private settled = false;
  private pending = 0;
  private revalidated = false;
  private readonly asked: Set<Peer>;
  private readonly deadline: number;
  private timer: NodeJS.Timeout | undefined;
  private resolve: (answer: PeerAnswer | undefined) => void = () => undefined;

  constructor(
    private readonly set: Peers,
    private readonly hashPart: string,
    private readonly options: LookupOptions,
  ) {
    this.asked = new Set<Peer>(options.skip);
    this.deadline = options.deadline;
  }

  run(): Promise<PeerAnswer | undefined> {
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(
        () => {
          this.finish(undefined);
        },
        Math.max(0, this.deadline - this.set.now()),
      );
      const t = this.set.now();
      for (const peer of this.set.peers) {
        if (!this.asked.has(peer) && peer.backoff.available(t) && maybeHas(peer, this.hashPart)) {
          this.ask(peer);
        }
      }
      this.drained();
    });
  }

  private finish(answer: PeerAnswer | undefined): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(answer);
  }

  /** Called whenever a request ends: with none left, revalidate once, then give up. */
  private drained(): void {
    if (this.settled || this.pending > 0) return;
    if (this.revalidated) {
      this.finish(undefined);
      return;
    }
    this.revalidated = true;
    const t = this.set.now();
    const stale = this.set.peers.filter(
      (p) =>
        !this.asked.has(p) &&
        p.backoff.available(t) &&
        p.filter !== undefined &&
        t - p.checkedAt >= REVALIDATE_AFTER_MS,
    );
    for (const peer of stale) this.revalidate(peer, t);
    if (stale.length === 0) this.finish(undefined);
  }

  private revalidate(peer: Peer, t: number): void {
    this.pending += 1;
    this.set
      .refresh(peer, Math.min(PEER_REQUEST_TIMEOUT_MS, this.deadline - t), this.deadline)
      .then(() => {
        if (!this.settled && !this.asked.has(peer) && maybeHas(peer, this.hashPart)) {
          this.ask(peer);
        }
      })
      .finally(() => {
        this.pending -= 1;
        this.drained();
      })
      .catch(() => undefined);
  }

  private ask(peer: Peer): void {
    this.asked.add(peer);
    this.pending += 1;
    this.set
      .ask(peer, this.hashPart, this.deadline, "narinfo")
      .then((answer) => {
        if (answer === undefined || this.set.now() > this.deadline) return;
        this.options.onAnswer?.(answer);
        this.finish(answer);
      })
      .catch((err: unknown) => {
        this.set.log.error({ peer: peer.label, ...errorFields(err) }, "peer lookup failed (a bug)");
      })
      .finally(() => {
        this.pending -= 1;
        this.drained();
      });
  }
}
