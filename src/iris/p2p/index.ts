/**
 * The peer-to-peer layer: the bloom filter and its wire format, the local
 * index behind `GET /bloom`, peers with their filters and backoff,
 * verification of peers' narinfos, verified NAR downloads shared by all
 * clients, the NAR cache on disk, and the routes and metrics of all that.
 */

export {
  DEFAULT_BLOOM_FALSE_POSITIVE_RATE,
  bloomEtag,
  bloomParameters,
  buildBloom,
  expectedFalsePositiveRate,
  parseBloom,
  serializeBloom,
  type BloomFilter,
} from "./bloom.js";
export { createLocalIndex, type LocalIndex } from "./local-index.js";
export { createP2pMetrics, type P2pMetrics } from "./metrics.js";
export { openNarCache, type NarCache, type NarCacheOptions } from "./nar-cache.js";
export { createNarFetcher } from "./nar-fetch.js";
export { createPeerHttp } from "./peer-http.js";
export { renderPeerNarInfo } from "./peer-narinfo.js";
export { createCacheResolver, createPeerResolver } from "./peer-resolver.js";
export { createPeerSet, type PeerSet } from "./peers.js";
export { bloomRoute, providersRoute, rescanRoute } from "./routes.js";
export { registryPeerUrls, watchRegistryPeers, type RegistryPeers } from "./registry-peers.js";
export { startScrub, type Scrub } from "./scrub.js";
export { type MinRate } from "./rate.js";
