/**
 * The CLI's side of ogygia-irisd: `ogygia iris push` and `ogygia iris
 * providers`, talking to a running daemon over HTTP. Kept apart from
 * `src/iris` (the daemon) so that these commands load none of the daemon's
 * server, metrics or logging code.
 */

export {
  DEFAULT_IRISD_URL,
  IRISD_URL_ENV,
  fetchProviders,
  irisdBaseUrl,
  parseProvidersAnswer,
  parseRescanAnswer,
  requestRescan,
  type Provider,
  type ProvidersAnswer,
  type RescanAnswer,
} from "./client.js";
export { queryProviders, renderProviders, resolveHashPart } from "./providers.js";
export {
  closureOf,
  hasValidSignature,
  pushPaths,
  renderPushResult,
  type PushFailure,
  type PushOptions,
  type PushResult,
} from "./push.js";
