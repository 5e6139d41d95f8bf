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

import { errorMessage } from "../../core/index.js";
import { isHashPart, type TrustedKeys } from "../../nix/index.js";
import { createBackoff, type Backoff } from "./backoff.js";
import { DEFAULT_MAX_BLOOM_BYTES, bloomEtag, parseBloom, type BloomFilter } from "./bloom.js";
import { continuationOf, rangeHeaders } from "./continuation.js";
import { errorFields, type IrisLogger } from "../log/index.js";
import type { P2pMetrics, PeerRequestKind } from "./metrics.js";
import {
  describeFailure,
  peerBase,
  type PeerBase,
  type PeerHttp,
  type PeerResponse,
} from "./peer-http.js";
import { verifyPeerNarInfo, type PeerNarInfoVerdict } from "./peer-narinfo.js";

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
  readonly backoff: Backoff;
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
  readonly peers: readonly Peer[];
  /** The first verified answer for the hash part, or undefined (see the module comment). */
  lookup(hashPart: string, options: LookupOptions): Promise<PeerAnswer | undefined>;
  /** Every available peer's verified answer for the hash part, within the deadline. */
  providers(hashPart: string, deadline: number): Promise<PeerAnswer[]>;
  /** The NAR from `offset` on, from one peer (throws when it cannot start). */
  openNar(
    peer: Peer,
    nar: { hashPart: string; narHash: string; narSize: number },
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
  log: IrisLogger;
  metrics?: P2pMetrics | undefined;
  /** Monotonic clock in ms (tests). */
  now?: () => number;
}

function retryAfterMs(headers: IncomingHttpHeaders): number {
  const value = Number(headers["retry-after"]);
  const seconds = Number.isFinite(value) ? value : 1;
  return Math.min(30, Math.max(1, seconds)) * 1000;
}

/** Peers from the configuration; see the module comment. */
export function createPeerSet(options: PeerSetOptions): PeerSet {
  const { http, trusted, storeDir, log, metrics } = options;
  const now = options.now ?? (() => performance.now());
  const peers: Peer[] = options.urls.map((url) => {
    const base = peerBase(url);
    return {
      base,
      label: base.label,
      backoff: createBackoff(),
      filter: undefined,
      etag: undefined,
      checkedAt: -Infinity,
      filterWaitUntil: 0,
      refreshing: undefined,
      up: true,
    };
  });
  for (const peer of peers) metrics?.peerUp(peer.label, true);
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const lastWarned = new Map<string, number>();

  const succeeded = (peer: Peer): void => {
    if (!peer.up) {
      peer.up = true;
      metrics?.peerUp(peer.label, true);
      log.info({ peer: peer.label }, "peer reachable again");
    }
    peer.backoff.success();
  };

  const failed = (peer: Peer, kind: PeerRequestKind, err: unknown): void => {
    metrics?.peerRequest(peer.label, kind, "failure");
    const t = now();
    // Requests already under way when it first failed do not lengthen the backoff.
    if (!peer.backoff.available(t)) return;
    const delay = peer.backoff.failure(t);
    if (peer.up) {
      peer.up = false;
      metrics?.peerUp(peer.label, false);
      log.warn(
        { peer: peer.label, request: kind, reason: describeFailure(err), retryInMs: delay },
        "peer unreachable: skipped until it answers again",
      );
    } else {
      log.debug({ peer: peer.label, request: kind, reason: describeFailure(err) }, "peer failed");
    }
  };

  const rejected = (peer: Peer, hashPart: string, reason: string, message: string): void => {
    metrics?.peerRequest(peer.label, "narinfo", "rejected");
    metrics?.rejection(peer.label, reason);
    const key = `${peer.label}\n${reason}`;
    const t = now();
    const last = lastWarned.get(key);
    if (last !== undefined && t - last < REJECTION_LOG_WINDOW_MS) {
      log.debug({ peer: peer.label, hashPart, reason, detail: message }, "peer answer rejected");
      return;
    }
    lastWarned.set(key, t);
    log.warn({ peer: peer.label, hashPart, reason, detail: message }, "peer answer rejected");
  };

  const request = async (
    peer: Peer,
    kind: PeerRequestKind,
    path: string,
    timeoutMs: number,
    headers?: Record<string, string>,
  ): Promise<PeerResponse | undefined> => {
    try {
      return await http.request(peer.base, { path, timeoutMs, headers });
    } catch (err) {
      if (!closed) failed(peer, kind, err);
      return undefined;
    }
  };

  const ask = async (
    peer: Peer,
    hashPart: string,
    deadline: number,
    kind: PeerRequestKind,
  ): Promise<PeerAnswer | undefined> => {
    const timeoutMs = Math.min(PEER_REQUEST_TIMEOUT_MS, deadline - now());
    if (timeoutMs <= 0) return undefined;
    const res = await request(peer, kind, `local/${hashPart}.narinfo`, timeoutMs);
    if (res === undefined) return undefined;
    if (res.status !== 200) {
      res.discard();
      if (res.status >= 500) {
        failed(peer, kind, new Error(`status ${res.status}`));
      } else {
        succeeded(peer);
        metrics?.peerRequest(peer.label, kind, "miss");
      }
      return undefined;
    }
    let body: Buffer;
    try {
      body = await res.readBody(MAX_NARINFO_BYTES);
    } catch (err) {
      failed(peer, kind, err);
      return undefined;
    }
    succeeded(peer);
    const verdict = verifyPeerNarInfo(body, {
      hashPart,
      trusted,
      storeDir,
      whence: `from ${peer.label}`,
    });
    if (!verdict.ok) {
      rejected(peer, hashPart, verdict.reason, verdict.message);
      return undefined;
    }
    metrics?.peerRequest(peer.label, kind, "ok");
    return { peer, verdict };
  };

  const fetchFilter = async (peer: Peer, timeoutMs: number): Promise<void> => {
    const headers: Record<string, string> = {};
    if (peer.etag !== undefined && peer.filter !== undefined) headers["if-none-match"] = peer.etag;
    const res = await request(peer, "bloom", "bloom", timeoutMs, headers);
    if (res === undefined) return;
    const t = now();
    if (res.status === 304 && peer.filter !== undefined) {
      res.discard();
      peer.checkedAt = t;
      succeeded(peer);
      metrics?.peerRequest(peer.label, "bloom", "not-modified");
      return;
    }
    if (res.status === 503 || res.status === 404) {
      res.discard();
      // Reachable, but no filter (its index is still building, or it has no /bloom):
      // lookups ask it directly meanwhile.
      peer.filter = undefined;
      peer.etag = undefined;
      peer.checkedAt = t;
      peer.filterWaitUntil =
        t + (res.status === 503 ? retryAfterMs(res.headers) : options.peerTtlMs);
      succeeded(peer);
      metrics?.peerRequest(peer.label, "bloom", "miss");
      return;
    }
    if (res.status !== 200) {
      res.discard();
      failed(peer, "bloom", new Error(`GET /bloom answered ${res.status}`));
      return;
    }
    let filter: BloomFilter;
    try {
      const bytes = await res.readBody(DEFAULT_MAX_BLOOM_BYTES);
      filter = parseBloom(bytes, { maxBytes: DEFAULT_MAX_BLOOM_BYTES, source: peer.label });
    } catch (err) {
      failed(peer, "bloom", err);
      return;
    }
    const etag = res.headers.etag;
    peer.filter = filter;
    peer.etag = typeof etag === "string" ? etag : bloomEtag(filter);
    peer.checkedAt = now();
    succeeded(peer);
    metrics?.peerRequest(peer.label, "bloom", "ok");
    log.debug({ peer: peer.label, paths: filter.count, bits: filter.bits }, "peer filter updated");
  };

  /** One filter request per peer at a time; waits at most until `deadline`. */
  const refresh = (peer: Peer, timeoutMs: number, deadline?: number): Promise<void> => {
    peer.refreshing ??= fetchFilter(peer, timeoutMs)
      .catch((err: unknown) => {
        log.error({ peer: peer.label, ...errorFields(err) }, "peer filter refresh failed (a bug)");
      })
      .finally(() => {
        peer.refreshing = undefined;
      });
    if (deadline === undefined) return peer.refreshing;
    const wait = deadline - now();
    if (wait <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, wait);
      void peer.refreshing?.finally(() => {
        clearTimeout(t);
        resolve();
      });
    });
  };

  const maybeHas = (peer: Peer, hashPart: string): boolean =>
    peer.filter === undefined || peer.filter.has(hashPart);

  const lookup = (
    hashPart: string,
    lookupOptions: LookupOptions,
  ): Promise<PeerAnswer | undefined> => {
    const { deadline, onAnswer } = lookupOptions;
    return new Promise((resolve) => {
      let settled = false;
      let pending = 0;
      let revalidated = false;
      const asked = new Set<Peer>(lookupOptions.skip);
      const finish = (answer: PeerAnswer | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(answer);
      };
      const timer = setTimeout(
        () => {
          finish(undefined);
        },
        Math.max(0, deadline - now()),
      );
      const drained = (): void => {
        if (settled || pending > 0) return;
        if (revalidated) {
          finish(undefined);
          return;
        }
        revalidated = true;
        const t = now();
        const stale = peers.filter(
          (p) =>
            !asked.has(p) &&
            p.backoff.available(t) &&
            p.filter !== undefined &&
            t - p.checkedAt >= REVALIDATE_AFTER_MS,
        );
        for (const peer of stale) {
          pending += 1;
          refresh(peer, Math.min(PEER_REQUEST_TIMEOUT_MS, deadline - t), deadline)
            .then(() => {
              if (!settled && !asked.has(peer) && maybeHas(peer, hashPart)) start(peer);
            })
            .finally(() => {
              pending -= 1;
              drained();
            })
            .catch(() => undefined);
        }
        if (stale.length === 0) finish(undefined);
      };
      const start = (peer: Peer): void => {
        asked.add(peer);
        pending += 1;
        ask(peer, hashPart, deadline, "narinfo")
          .then((answer) => {
            if (answer === undefined || now() > deadline) return;
            onAnswer?.(answer);
            finish(answer);
          })
          .catch((err: unknown) => {
            log.error({ peer: peer.label, ...errorFields(err) }, "peer lookup failed (a bug)");
          })
          .finally(() => {
            pending -= 1;
            drained();
          });
      };
      const t = now();
      for (const peer of peers) {
        if (!asked.has(peer) && peer.backoff.available(t) && maybeHas(peer, hashPart)) {
          start(peer);
        }
      }
      drained();
    });
  };

  return {
    peers,
    async lookup(hashPart, lookupOptions) {
      const answer = await lookup(hashPart, lookupOptions);
      if (answer !== undefined) metrics?.lookup("hit");
      else metrics?.lookup(now() >= lookupOptions.deadline ? "deadline" : "miss");
      return answer;
    },
    async providers(hashPart, deadline) {
      const t = now();
      const answers = await Promise.all(
        peers
          .filter((p) => p.backoff.available(t))
          .map((p) => ask(p, hashPart, deadline, "providers")),
      );
      return answers.filter((a): a is PeerAnswer => a !== undefined);
    },
    async openNar(peer, nar, offset, signal) {
      if (!isHashPart(nar.hashPart)) throw new Error(`openNar: bad hash part ${nar.hashPart}`);
      let res: PeerResponse;
      try {
        res = await http.request(peer.base, {
          path: `local/nar/${nar.hashPart}-${nar.narHash}.nar`,
          headers: rangeHeaders(offset, nar.narHash),
          timeoutMs: PEER_REQUEST_TIMEOUT_MS,
          bodyIdleMs: NAR_IDLE_TIMEOUT_MS,
          signal,
        });
      } catch (err) {
        if (!signal.aborted) failed(peer, "nar", err);
        throw err;
      }
      if (res.status >= 500) {
        res.discard();
        const err = new Error(`peer ${peer.label}: NAR request answered ${res.status}`);
        failed(peer, "nar", err);
        throw err;
      }
      const plan = continuationOf({
        status: res.status,
        contentRange: res.headers["content-range"],
        contentLength: res.headers["content-length"],
        offset,
        size: nar.narSize,
      });
      if (!plan.ok) {
        res.discard();
        metrics?.peerRequest(peer.label, "nar", "miss");
        throw new Error(`peer ${peer.label}: cannot continue the NAR at ${offset}: ${plan.reason}`);
      }
      succeeded(peer);
      metrics?.peerRequest(peer.label, "nar", "ok");
      const label = peer.label;
      const body = res.body;
      let skip = plan.skip;
      return (async function* chunks() {
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
          if (!signal.aborted) failed(peer, "nar", err);
          throw err;
        } finally {
          // Counted once per response: the metric costs more than a chunk's bookkeeping.
          metrics?.narBytes(label, received);
        }
      })();
    },
    failed,
    start() {
      if (timer !== undefined || peers.length === 0) return;
      const tick = (): void => {
        const t = now();
        for (const peer of peers) {
          if (peer.refreshing !== undefined || !peer.backoff.available(t)) continue;
          if (t < peer.filterWaitUntil) continue;
          const due = peer.filter === undefined || t - peer.checkedAt >= options.peerTtlMs;
          if (due) void refresh(peer, FILTER_REFRESH_TIMEOUT_MS);
        }
      };
      tick();
      timer = setInterval(tick, TICK_MS);
      timer.unref();
    },
    async close() {
      closed = true;
      if (timer !== undefined) clearInterval(timer);
      await http.close().catch((err: unknown) => {
        log.debug({ err: errorMessage(err) }, "closing peer connections");
      });
    },
  };
}
