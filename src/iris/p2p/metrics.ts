/**
 * Metrics of the peer-to-peer layer, on the daemon's registry: requests to
 * peers and their outcomes, verification rejections, NAR bytes and
 * failovers, the NAR cache, and the local bloom index. Peer labels are the
 * redacted base URLs, so there are as many series as configured peers.
 */

import { Counter, Gauge, type Registry } from "prom-client";

export type PeerRequestKind = "bloom" | "narinfo" | "nar" | "providers";
export type PeerOutcome = "ok" | "not-modified" | "miss" | "failure" | "rejected";

export interface P2pMetrics {
  peerRequest(peer: string, kind: PeerRequestKind, outcome: PeerOutcome): void;
  rejection(peer: string, reason: string): void;
  narBytes(peer: string, bytes: number): void;
  failover(): void;
  peerUp(peer: string, up: boolean): void;
  lookup(result: "hit" | "miss" | "deadline"): void;
  cacheHit(): void;
  cacheMiss(): void;
  cacheStored(bytes: number): void;
  cacheEviction(reason: "idle" | "size" | "replaced" | "gone" | "corrupt"): void;
  cacheSize(entries: number, bytes: number): void;
  fetchFailed(reason: "mismatch" | "providers"): void;
  /** NAR downloads from peers in progress (until their NAR is cached). */
  downloads(count: number): void;
  indexSize(paths: number): void;
  indexRebuilt(reason: string): void;
  /** A narinfo answered, or a NAR downloaded, ahead of a client's request. */
  readAhead(kind: "narinfo" | "nar"): void;
}

/** Registers the peer-to-peer metrics on `registry` (in this order, as /metrics lists them). */
export function createP2pMetrics(registry: Registry, prefix = "irisd_"): P2pMetrics {
  const registers = [registry];
  return {
    ...peerMetrics(registers, prefix),
    ...cacheMetrics(registers, prefix),
    ...downloadAndIndexMetrics(registers, prefix),
  };
}

/** Requests to peers, rejections, NAR bytes, failovers, liveness and lookups. */
function peerMetrics(
  registers: Registry[],
  prefix: string,
): Pick<P2pMetrics, "peerRequest" | "rejection" | "narBytes" | "failover" | "peerUp" | "lookup"> {
  const requests = new Counter({
    name: `${prefix}peer_requests_total`,
    help: "Requests to peers, by peer, kind (bloom, narinfo, nar, providers) and outcome.",
    labelNames: ["peer", "kind", "outcome"],
    registers,
  });
  const rejections = new Counter({
    name: `${prefix}peer_verification_rejections_total`,
    help: "Answers from peers refused by verification, by peer and reason.",
    labelNames: ["peer", "reason"],
    registers,
  });
  const bytes = new Counter({
    name: `${prefix}peer_nar_bytes_total`,
    help: "NAR bytes received from peers, by peer.",
    labelNames: ["peer"],
    registers,
  });
  const failovers = new Counter({
    name: `${prefix}peer_nar_failovers_total`,
    help: "NAR downloads continued from another provider after one failed mid-stream.",
    registers,
  });
  const up = new Gauge({
    name: `${prefix}peer_up`,
    help: "1 when the peer answers, 0 while it is in backoff after failures.",
    labelNames: ["peer"],
    registers,
  });
  const lookups = new Counter({
    name: `${prefix}peer_lookups_total`,
    help: "Narinfo lookups through peers, by result (deadline: the time bound ran out).",
    labelNames: ["result"],
    registers,
  });
  return {
    peerRequest: (peer, kind, outcome) => {
      requests.inc({ peer, kind, outcome });
    },
    rejection: (peer, reason) => {
      rejections.inc({ peer, reason });
    },
    narBytes: (peer, n) => {
      bytes.inc({ peer }, n);
    },
    failover: () => {
      failovers.inc();
    },
    peerUp: (peer, isUp) => {
      up.set({ peer }, isUp ? 1 : 0);
    },
    lookup: (result) => {
      lookups.inc({ result });
    },
  };
}

/** The NAR cache: hits, misses, bytes stored, evictions, size. */
function cacheMetrics(
  registers: Registry[],
  prefix: string,
): Pick<P2pMetrics, "cacheHit" | "cacheMiss" | "cacheStored" | "cacheEviction" | "cacheSize"> {
  const hits = new Counter({
    name: `${prefix}nar_cache_hits_total`,
    help: "NAR requests answered from the NAR cache.",
    registers,
  });
  const misses = new Counter({
    name: `${prefix}nar_cache_misses_total`,
    help: "NAR requests that had to be fetched from peers.",
    registers,
  });
  const stored = new Counter({
    name: `${prefix}nar_cache_stored_bytes_total`,
    help: "Bytes of verified NARs written into the NAR cache.",
    registers,
  });
  const evictions = new Counter({
    name: `${prefix}nar_cache_evictions_total`,
    help: "NAR cache entries removed, by reason (idle, size, replaced, gone).",
    labelNames: ["reason"],
    registers,
  });
  const cacheEntries = new Gauge({
    name: `${prefix}nar_cache_entries`,
    help: "Entries in the NAR cache.",
    registers,
  });
  const cacheBytes = new Gauge({
    name: `${prefix}nar_cache_bytes`,
    help: "Bytes in the NAR cache.",
    registers,
  });
  return {
    cacheHit: () => {
      hits.inc();
    },
    cacheMiss: () => {
      misses.inc();
    },
    cacheStored: (n) => {
      stored.inc(n);
    },
    cacheEviction: (reason) => {
      evictions.inc({ reason });
    },
    cacheSize(entries, total) {
      cacheEntries.set(entries);
      cacheBytes.set(total);
    },
  };
}

/** Downloads through peers, the local bloom index and read-ahead. */
function downloadAndIndexMetrics(
  registers: Registry[],
  prefix: string,
): Pick<P2pMetrics, "fetchFailed" | "downloads" | "indexSize" | "indexRebuilt" | "readAhead"> {
  const fetchFailures = new Counter({
    name: `${prefix}peer_nar_fetch_failures_total`,
    help: "NAR downloads through peers that failed, by reason (mismatch: the bytes did not verify).",
    labelNames: ["reason"],
    registers,
  });
  const downloads = new Gauge({
    name: `${prefix}peer_nar_downloads_in_progress`,
    help: "NAR downloads from peers in progress, until their NAR is in the cache.",
    registers,
  });
  const indexPaths = new Gauge({
    name: `${prefix}bloom_paths`,
    help: "Hash parts in the local bloom filter (serveable store paths and cached NARs).",
    registers,
  });
  const rebuilds = new Counter({
    name: `${prefix}bloom_rebuilds_total`,
    help: "Builds of the local bloom filter, by reason (start, deleted, capacity, rescan).",
    labelNames: ["reason"],
    registers,
  });
  const readAheads = new Counter({
    name: `${prefix}read_ahead_total`,
    help: "Narinfos answered and NARs downloaded from peers ahead of a client's request, by kind.",
    labelNames: ["kind"],
    registers,
  });
  return {
    fetchFailed: (reason) => {
      fetchFailures.inc({ reason });
    },
    downloads: (count) => {
      downloads.set(count);
    },
    indexSize: (paths) => {
      indexPaths.set(paths);
    },
    indexRebuilt: (reason) => {
      rebuilds.inc({ reason });
    },
    readAhead: (kind) => {
      readAheads.inc({ kind });
    },
  };
}
