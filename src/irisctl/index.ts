/**
 * The CLI's side of ogygia-irisd: `ogygia iris push` and `ogygia iris
 * providers`, talking to a running daemon over HTTP. Kept apart from
 * `src/iris` (the daemon) so that these commands load none of the daemon's
 * server, metrics or logging code.
 */

export { irisdBaseUrl } from "./client.js";
export { queryProviders, renderProviders } from "./providers.js";
export { pushPaths, renderPushResult } from "./push.js";
