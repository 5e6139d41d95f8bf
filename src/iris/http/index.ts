/**
 * irisd's HTTP layer: the server, the router, strict request targets,
 * ranges, the error that carries a status, the request metrics, and the
 * binary-cache routes over a resolver chain (`resolve.ts`: the interface
 * the store and the peers implement). It imports neither `store/` nor
 * `p2p/`.
 */

export { HttpError, badRequest } from "./http-error.js";
export { createHttpMetrics, type HttpMetrics } from "./metrics.js";
export {
  createResolverChain,
  type ByteRange,
  type LookupOptions,
  type NarCompression,
  type PathResolver,
  type ResolverChain,
  type ServedNar,
  type ServedNarInfo,
} from "./resolve.js";
export type { Route } from "./router.js";
export { buildLogRoute, coreRoutes, sendBody, storeRoutes } from "./routes.js";
export { serviceRoutes, type ServiceRoutesOptions } from "./service-routes.js";
export { IrisServer, type BoundAddress, type ListenAddress } from "./server.js";
export { createCauseLog, type ConnectionLimits } from "./limits.js";
