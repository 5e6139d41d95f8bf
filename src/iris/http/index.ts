/**
 * irisd's HTTP layer: the server, the router, strict request targets,
 * ranges, the error that carries a status, the request metrics, and the
 * binary-cache routes over a resolver chain (`resolve.ts`: the interface
 * the store and the peers implement). It imports neither `store/` nor
 * `p2p/`.
 */

export { HttpError, badRequest, notFound } from "./http-error.js";
export {
  createHttpMetrics,
  renderAggregated,
  type HttpMetrics,
  type MetricsSnapshot,
} from "./metrics.js";
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
export type { Route, RouteOutcome } from "./router.js";
export { buildLogRoute, coreRoutes, sendBody, storeRoutes } from "./routes.js";
export { serviceRoutes, type ServiceRoutesOptions } from "./service-routes.js";
export {
  FORWARDED_CLIENT_HEADER,
  IrisServer,
  clientAddress,
  removeStaleSockets,
  type BoundAddress,
  type ListenAddress,
} from "./server.js";
export { createCauseLog, type ConnectionLimits } from "./limits.js";
export { createForwarder, forwardRoute, orForward, type Forwarder } from "./forward.js";
