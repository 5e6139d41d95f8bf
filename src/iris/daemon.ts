/**
 * The composition root: from a validated configuration to a running
 * server. Opens the store, loads the signing keys, opens the NAR cache
 * (when there are peers), starts the local bloom index, builds the
 * resolver chain (local store → NAR cache → peers) and the routes, and
 * listens.
 */

import { createTrustedKeys } from "../nix/index.js";

import type { IrisdConfig } from "./config.js";
import {
  IrisServer,
  coreRoutes,
  createHttpMetrics,
  createResolverChain,
  storeRoutes,
  type BoundAddress,
  type PathResolver,
} from "./http/index.js";
import type { IrisLogger } from "./log/index.js";
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
  type LocalIndex,
  type NarCache,
  type PeerSet,
} from "./p2p/index.js";
import { loadSigningKeys, openLocalStore } from "./store/index.js";

export interface IrisDaemon {
  readonly addresses: readonly BoundAddress[];
  /** Graceful stop: see `IrisServer.close`. Then closes the store. */
  stop(): Promise<void>;
}

/**
 * Starts serving. Throws OgygiaError when a key cannot be read, the store
 * database is missing or an address cannot be bound (nothing is left open).
 */
export async function startDaemon(config: IrisdConfig, log: IrisLogger): Promise<IrisDaemon> {
  const signingKeys = await loadSigningKeys(config.signing.secretKeyFiles);
  const local = openLocalStore({
    root: config.store.root,
    signingKeys,
    narMemoryCacheBytes: config.store.narMemoryCacheBytes,
  });
  const metrics = createHttpMetrics();
  const p2pMetrics = createP2pMetrics(metrics.registry);
  const storeDir = local.db.location.storeDir;
  const trusted = createTrustedKeys(config.trust.trustedKeys);
  const resolvers: PathResolver[] = [local];
  let cache: NarCache | undefined;
  let peers: PeerSet | undefined;
  let index: LocalIndex | undefined;
  try {
    // The cache only holds what came from peers: without peers it is not opened.
    if (config.peers.urls.length > 0) {
      cache = await openNarCache({
        dir: config.cache.dir,
        maxBytes: config.cache.maxSizeBytes,
        timeToIdleMs: config.cache.timeToIdleSecs * 1000,
        trusted,
        storeDir,
        log,
        metrics: p2pMetrics,
      });
      peers = createPeerSet({
        urls: config.peers.urls,
        http: createPeerHttp(),
        trusted,
        storeDir,
        peerTtlMs: config.bloom.peerTtlSecs * 1000,
        log,
        metrics: p2pMetrics,
      });
      const fetcher = createNarFetcher({ cache, log, metrics: p2pMetrics });
      resolvers.push(
        createCacheResolver(cache, p2pMetrics),
        createPeerResolver({
          peers,
          fetcher,
          storeDir,
          metrics: p2pMetrics,
          // The index (store and cache) exists once the resolvers do; until then nothing is local.
          isLocal: config.peers.readAhead ? (hashPart) => index?.has(hashPart) ?? false : undefined,
          readAheadNarBytes: config.peers.readAheadNarBytes,
        }),
      );
    }
    const cached = cache;
    index = createLocalIndex({
      db: local.db,
      canSign: local.canSign,
      falsePositiveRate: config.bloom.falsePositiveRate,
      extraHashParts: () => cached?.hashParts() ?? [],
      log,
      metrics: p2pMetrics,
    });
  } catch (err) {
    cache?.close();
    local.close();
    throw err;
  }
  const localIndex = index;
  cache?.onChange((event) => {
    if (event.type === "added") localIndex.addHashPart(event.hashPart);
    else localIndex.removed();
  });
  const chain = createResolverChain(resolvers);
  const server = new IrisServer({
    routes: [
      ...coreRoutes({
        chain,
        metrics,
        storeDir,
        priority: config.server.priority,
      }),
      ...storeRoutes({
        chain,
        prefix: "/local/",
        namePrefix: "local-",
        lookup: { localOnly: true },
      }),
      bloomRoute(localIndex),
      providersRoute({ chain, peers }),
      rescanRoute({ index: localIndex, storeDir }),
    ],
    log,
    metrics,
    shutdownTimeoutMs: config.server.shutdownTimeoutSecs * 1000,
  });
  try {
    await server.listen(config.server.listen);
  } catch (err) {
    localIndex.close();
    await chain.close();
    throw err;
  }
  peers?.start();
  log.info(
    {
      addresses: server.addresses.map((a) => a.url),
      storeRoot: config.store.root,
      storeDb: local.db.dbPath,
      validPaths: local.db.countValidPaths(),
      signingKeys: signingKeys.map((k) => k.name),
      peers: peers?.peers.map((p) => p.label) ?? [],
      trustedKeys: [...trusted.keys()],
      cache: cache === undefined ? null : config.cache.dir,
      config: config.path ?? null,
    },
    "listening",
  );
  return {
    addresses: server.addresses,
    async stop() {
      await server.close();
      localIndex.close();
      await chain.close();
    },
  };
}
