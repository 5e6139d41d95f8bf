/**
 * ogygia-irisd, the binary-cache daemon: configuration, the HTTP server and
 * its router, the resolver chain and the local-store resolver. This file is
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
export { startDaemon, type IrisDaemon } from "./daemon.js";
export { HttpError, badRequest, notFound } from "./http-error.js";
export {
  narUrlOf,
  openLocalStore,
  type LocalStore,
  type LocalStoreOptions,
} from "./local-store.js";
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
