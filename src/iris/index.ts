/**
 * ogygia-irisd, the binary-cache daemon: configuration, the HTTP server and
 * its router, the resolver chain and the local-store resolver, and the
 * peer-to-peer layer (bloom filters, peers, the NAR cache). This file is
 * the only import surface of `src/iris/` (`main.ts` is the program).
 */

export {
  CONFIG_ENV,
  DEFAULT_CONFIG_PATH,
  DEFAULT_LISTEN,
  DEFAULT_PRIORITY,
  EXIT_CONFIG,
  LOG_LEVELS,
  irisdConfigSchema,
  irisdConfigSource,
  loadIrisdConfig,
  parseIrisdConfig,
  type IrisdConfig,
  type IrisdConfigSource,
  type ListenAddress,
  type LogLevel,
} from "./config.js";
export {
  BLOOM_FORMAT_VERSION,
  DEFAULT_BLOOM_FALSE_POSITIVE_RATE,
  bloomEtag,
  bloomParameters,
  buildBloom,
  createBloom,
  expectedFalsePositiveRate,
  parseBloom,
  serializeBloom,
  type BloomFilter,
  type BloomParameters,
} from "./bloom.js";
export { startDaemon, type IrisDaemon } from "./daemon.js";
export { HttpError, badRequest, notFound } from "./http-error.js";
export {
  isServeable,
  narUrlOf,
  openLocalStore,
  type LocalStore,
  type LocalStoreOptions,
} from "./local-store.js";
export {
  createLocalIndex,
  type BloomSnapshot,
  type LocalIndex,
  type LocalIndexOptions,
  type RescanResult,
} from "./local-index.js";
export { openNarCache, type CacheEntry, type NarCache, type NarCacheOptions } from "./nar-cache.js";
export { createNarFetcher, type FetchSpec, type NarFetcher, type NarSource } from "./nar-fetch.js";
export {
  MAX_RESCAN_BODY_BYTES,
  bloomRoute,
  ifNoneMatch,
  isLoopbackAddress,
  parseRescanBody,
  providersRoute,
  rescanRoute,
} from "./p2p-routes.js";
export { createPeerHttp, peerLabel, type PeerHttp } from "./peer-http.js";
export {
  contentCheckFor,
  renderPeerNarInfo,
  verifyPeerNarInfo,
  type PeerNarInfoVerdict,
} from "./peer-narinfo.js";
export { createCacheResolver, createPeerResolver } from "./peer-resolver.js";
export {
  LOOKUP_DEADLINE_MS,
  PEER_REQUEST_TIMEOUT_MS,
  REVALIDATE_AFTER_MS,
  createPeerSet,
  type Peer,
  type PeerSet,
} from "./peers.js";
export { createIrisLogger, errorFields, type IrisLogger } from "./log.js";
export { createHttpMetrics, type HttpMetrics } from "./metrics.js";
export { notifySystemd, type NotifyState } from "./notify.js";
export { evaluateRange, type RangeDecision } from "./range.js";
export {
  createResolverChain,
  type ByteRange,
  type LookupOptions,
  type PathResolver,
  type ResolverChain,
  type ServedNar,
  type ServedNarInfo,
} from "./resolve.js";
export {
  createRouter,
  exactPath,
  narInfoPath,
  narPath,
  type Route,
  type RouteMatch,
  type RouteOutcome,
  type Router,
} from "./router.js";
export {
  coreRoutes,
  sendBody,
  storeRoutes,
  type CoreRoutesOptions,
  type StoreRoutesOptions,
} from "./routes.js";
export { IrisServer, type BoundAddress, type IrisServerOptions } from "./server.js";
export { createPathSigner, loadSigningKeys, type PathSigner } from "./signing.js";
export { MAX_TARGET_LENGTH, requestPath } from "./url.js";
