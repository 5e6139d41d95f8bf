/**
 * The composition root: from a validated configuration to a running
 * server. Opens the store, loads the signing keys, opens the NAR cache
 * (when there are peers), starts the local bloom index, builds the
 * resolver chain (local store → NAR cache → peers) and the routes, and
 * listens.
 */

import path from "node:path";

import { Counter, type Registry } from "prom-client";

import { packageVersion } from "../core/index.js";
import {
  createTrustedKeys,
  openClosureDb,
  type ClosureDb,
  type TrustedKeys,
} from "../nix/index.js";

import { closureRoute } from "./closure-route.js";
import {
  loadZstd,
  openCompressedNars,
  zstdCompression,
  type CompressedNars,
} from "./zstd/index.js";
import type { IrisdConfig } from "./config.js";
import { openConfiguredStore } from "./configured-store.js";
import {
  IrisServer,
  coreRoutes,
  createCauseLog,
  createHttpMetrics,
  buildLogRoute,
  createResolverChain,
  serviceRoutes,
  storeRoutes,
  renderAggregated,
  type BoundAddress,
  type HttpMetrics,
  type ListenAddress,
  type MetricsSnapshot,
  type NarCompression,
  type PathResolver,
  type ResolverChain,
  type Route,
} from "./http/index.js";
import type { Logger } from "../log/index.js";
import {
  bloomRoute,
  createCacheResolver,
  createLocalIndex,
  createNarFetcher,
  createP2pMetrics,
  createPeerHttp,
  createPeerResolver,
  createPeerSet,
  openNarCache,
  providersRoute,
  rescanRoute,
  watchRegistryPeers,
  startScrub,
  type LocalIndex,
  type MinRate,
  type NarCache,
  type P2pMetrics,
  type PeerSet,
  type RegistryPeers,
} from "./p2p/index.js";

export interface IrisDaemon {
  readonly addresses: readonly BoundAddress[];
  /** Graceful stop: see `IrisServer.close`. Then closes the store. */
  stop(): Promise<void>;
}

/**
 * The primary process of a daemon with workers (`[server] workers` above
 * 1): it serves only its workers, on a private address, and its `/metrics`
 * adds theirs up.
 */
export interface PrimaryRole {
  /** The private Unix socket the workers forward to. */
  listen: ListenAddress;
  /** How many workers forward to it (its connection cap grows with them). */
  workers: number;
  /** The workers' metrics, for one `/metrics` of the whole daemon. */
  workerMetrics(): Promise<MetricsSnapshot[]>;
  /** Instead of logging `listening`: the fields of that line, for the primary to log once workers listen. */
  onListening(fields: Record<string, unknown>): void;
}

/** Idle connections a worker keeps to its primary, beyond its share of `max_connections`. */
const IDLE_CONNECTIONS_PER_WORKER = 64;

/** What the peer-to-peer layer adds to the daemon when `[peers] urls` is not empty. */
interface PeerLayer {
  cache: NarCache;
  peers: PeerSet;
  /** The NAR cache's resolver, then the peers'. */
  resolvers: PathResolver[];
}

/**
 * Opens the NAR cache (it only holds what came from peers: without peers it
 * is not opened) and creates the peer set and the resolvers over them.
 */
async function openPeerLayer(
  config: IrisdConfig,
  context: {
    storeDir: string;
    trusted: TrustedKeys;
    log: Logger;
    metrics: P2pMetrics;
    isLocal: (hashPart: string) => boolean;
    minRate?: MinRate;
  },
): Promise<PeerLayer> {
  const { storeDir, trusted, log, metrics } = context;
  const cache = await openNarCache({
    dir: config.cache.dir,
    maxBytes: config.cache.maxSizeBytes,
    timeToIdleMs: config.cache.timeToIdleSecs * 1000,
    trusted,
    storeDir,
    log,
    metrics,
  });
  try {
    const peers = createPeerSet({
      urls: config.peers.urls,
      http: createPeerHttp(),
      trusted,
      storeDir,
      peerTtlMs: config.bloom.peerTtlSecs * 1000,
      log,
      metrics,
    });
    const fetcher = createNarFetcher({ cache, log, metrics, minRate: context.minRate });
    const resolvers = [
      createCacheResolver(cache, metrics),
      createPeerResolver({
        peers,
        fetcher,
        storeDir,
        metrics,
        isLocal: config.peers.readAhead ? context.isLocal : undefined,
        readAheadNarBytes: config.peers.readAheadNarBytes,
      }),
    ];
    return { cache, peers, resolvers };
  } catch (err) {
    cache.close();
    throw err;
  }
}

/** `[limits]`'s minimum peer rate, counted in `irisd_peer_slow_total` and logged once per peer a minute. */
function slowPeers(config: IrisdConfig, log: Logger, registry: Registry): MinRate {
  const slow = new Counter({
    name: "irisd_peer_slow_total",
    help: "NAR transfers cut because the peer was below [limits] peer_min_bytes_per_sec.",
    labelNames: ["peer"],
    registers: [registry],
  });
  const note = createCauseLog(log);
  return {
    ...config.limits.peerMinRate,
    onSlow(peer, bytes) {
      slow.inc({ peer }, 1);
      note(
        `slow:${peer}`,
        "peer below the minimum transfer rate: continuing from the next provider",
        {
          peer,
          bytesInWindow: bytes,
          minBytesPerSec: config.limits.peerMinRate.bytesPerSec,
        },
      );
    },
  };
}

/** Every route: the binary cache, its `/local/` twins for peers, and the peer-to-peer API. */
function daemonRoutes(options: {
  config: IrisdConfig;
  chain: ResolverChain;
  metrics: HttpMetrics;
  storeDir: string;
  index: LocalIndex;
  peers: PeerSet | undefined;
  buildLog: (drvBaseName: string) => Promise<Buffer | undefined>;
  closureDb: ClosureDb;
  canSign: boolean;
  compression: NarCompression | undefined;
  renderMetrics: (() => Promise<{ contentType: string; body: string }>) | undefined;
}): Route[] {
  const { config, chain, metrics, storeDir, index, peers, compression } = options;
  return [
    ...coreRoutes({
      chain,
      metrics,
      storeDir,
      priority: config.server.priority,
      compression,
      renderMetrics: options.renderMetrics,
    }),
    buildLogRoute(options.buildLog),
    ...storeRoutes({
      chain,
      prefix: "/local/",
      namePrefix: "local-",
      lookup: { localOnly: true },
      compression,
    }),
    bloomRoute(index),
    providersRoute({ chain, peers }),
    rescanRoute({ index, storeDir }),
    closureRoute({ db: options.closureDb, chain, storeDir, canSign: options.canSign }),
    ...serviceRoutes({
      version: packageVersion(import.meta.url),
      features: daemonFeatures(config),
      ready: () => index.ready,
      peerCount: () => peers?.peers.length ?? 0,
    }),
  ];
}

/** What `GET /version` says this daemon serves beyond the binary-cache protocol. */
function daemonFeatures(config: IrisdConfig): string[] {
  const features = ["health", "listing", "log", "bloom", "providers", "rescan", "closure"];
  if (config.peers.urls.length > 0 || config.peers.registry) features.push("peers");
  if (config.peers.registry) features.push("registry");
  if (config.server.listen.some((a) => a.socketPath !== undefined)) features.push("unix-socket");
  if (config.server.compression === "zstd") features.push("zstd");
  return features;
}

/** The peer-to-peer part of the "listening" log line. */
function peerFields(
  config: IrisdConfig,
  layer: PeerLayer | undefined,
  trusted: TrustedKeys,
): { peers: string[]; trustedKeys: string[]; cache: string | null } {
  return {
    peers: layer?.peers.peers.map((p) => p.label) ?? [],
    trustedKeys: [...trusted.keys()],
    cache: layer === undefined ? null : config.cache.dir,
  };
}

/**
 * Starts serving. Throws OgygiaError when a key cannot be read, the store
 * database is missing or an address cannot be bound (nothing is left open).
 */
export async function startDaemon(
  config: IrisdConfig,
  log: Logger,
  primary?: PrimaryRole,
): Promise<IrisDaemon> {
  const { local, keyNames } = await openConfiguredStore(config);
  const metrics = createHttpMetrics();
  const p2pMetrics = createP2pMetrics(metrics.registry);
  const storeDir = local.db.location.storeDir;
  const trusted = createTrustedKeys(config.trust.trustedKeys);
  let layer: PeerLayer | undefined;
  let index: LocalIndex | undefined;
  try {
    if (config.peers.urls.length > 0 || config.peers.registry) {
      layer = await openPeerLayer(config, {
        storeDir,
        trusted,
        log,
        metrics: p2pMetrics,
        // The index (store and cache) exists once the resolvers do; until then nothing is local.
        isLocal: (hashPart) => index?.has(hashPart) ?? false,
        minRate: slowPeers(config, log, metrics.registry),
      });
    }
    const cached = layer?.cache;
    index = createLocalIndex({
      db: local.db,
      canSign: local.canSign,
      falsePositiveRate: config.bloom.falsePositiveRate,
      extraHashParts: () => cached?.hashParts() ?? [],
      log,
      metrics: p2pMetrics,
    });
  } catch (err) {
    layer?.cache.close();
    local.close();
    throw err;
  }
  const localIndex = index;
  const { cache, peers } = layer ?? {};
  cache?.onChange((event) => {
    if (event.type === "added") localIndex.addHashPart(event.hashPart);
    else localIndex.removed();
  });
  const chain = createResolverChain([local, ...(layer?.resolvers ?? [])]);
  let compressed: CompressedNars | undefined;
  try {
    compressed = await openCompression(config, log);
  } catch (err) {
    localIndex.close();
    await chain.close();
    throw err;
  }
  const compression =
    compressed === undefined
      ? undefined
      : zstdCompression({ chain, store: compressed, storeDir, log });
  const closureDb = openClosureDb(local.db.dbPath);
  const server = new IrisServer({
    routes: daemonRoutes({
      config,
      chain,
      metrics,
      storeDir,
      index: localIndex,
      peers,
      buildLog: (name) => local.buildLog(name),
      closureDb,
      canSign: local.canSign,
      compression,
      renderMetrics:
        primary === undefined
          ? undefined
          : async () => renderAggregated(await metrics.snapshot(), await primary.workerMetrics()),
    }),
    log,
    metrics,
    shutdownTimeoutMs: config.server.shutdownTimeoutSecs * 1000,
    limits:
      primary === undefined
        ? config.limits.connections
        : {
            ...config.limits.connections,
            maxConnections:
              config.limits.connections.maxConnections +
              primary.workers * IDLE_CONNECTIONS_PER_WORKER,
          },
    forwardedFromWorkers: primary !== undefined,
  });
  const scrub =
    cache === undefined
      ? undefined
      : startScrub({ cache, log, intervalMs: config.limits.cacheScrubIntervalMs });
  let registry: RegistryPeers | undefined;
  try {
    if (peers !== undefined && config.peers.registry) {
      registry = await watchRegistryPeers({
        configFile: config.peers.ogygiaConfig,
        advertise: config.server.advertise,
        log,
        onUrls(urls) {
          const { added, removed } = peers.setUrls([...config.peers.urls, ...urls]);
          if (added.length === 0 && removed.length === 0) return;
          log.info({ added, removed, peers: peers.peers.map((p) => p.label) }, "peers changed");
        },
      });
    }
    await server.listen(primary === undefined ? config.server.listen : [primary.listen]);
  } catch (err) {
    await registry?.close();
    await scrub?.stop();
    localIndex.close();
    compressed?.close();
    await chain.close();
    closureDb.close();
    throw err;
  }
  peers?.start();
  const listening = {
    addresses: server.addresses.map((a) => a.url),
    storeRoot: config.store.root,
    storeDb: local.db.dbPath,
    validPaths: local.db.countValidPaths(),
    signingKeys: keyNames,
    ...peerFields(config, layer, trusted),
    registry: registry?.description ?? null,
    advertise: config.server.advertise ?? null,
    compression: config.server.compression,
    config: config.path ?? null,
  };
  if (primary === undefined) log.info(listening, "listening");
  else primary.onListening(listening);
  return {
    addresses: server.addresses,
    async stop() {
      await registry?.close();
      await server.close();
      await scrub?.stop();
      localIndex.close();
      compressed?.close();
      await chain.close();
      closureDb.close();
    },
  };
}

/**
 * With `[server] compression = "zstd"`: the compressed NARs under
 * `[cache] dir`/zstd, bounded by the `[cache]` limits. The addon is loaded
 * now, so a daemon that cannot compress fails at start, not on a request.
 */
async function openCompression(
  config: IrisdConfig,
  log: Logger,
): Promise<CompressedNars | undefined> {
  if (config.server.compression !== "zstd") return undefined;
  await loadZstd();
  return openCompressedNars({
    dir: path.join(config.cache.dir, "zstd"),
    maxBytes: config.cache.maxSizeBytes,
    timeToIdleMs: config.cache.timeToIdleSecs * 1000,
    log,
  });
}
