export {
  OgygiaError,
  isOgygiaError,
  hasErrorCode,
  errorMessage,
  type OgygiaErrorCode,
  type OgygiaErrorOptions,
  type SystemError,
} from "./errors.js";
export {
  escapeForTerminal,
  prepareDisplayWidth,
  displayWidth,
  padEndDisplay,
  redactUrl,
} from "./text.js";
export { checkHttpUrl, isLoopbackIPv4 } from "./url.js";
export { packageVersion } from "./version.js";
export { EXIT_BUG, errorReport, type ErrorReport, type ErrorReportOptions } from "./report.js";
export { Backoff, BackoffGate, backoffDelay, delay, type BackoffOptions } from "./backoff.js";
export { compareText, fastSortKey, naturalCompare, naturalSortBy } from "./natural-sort.js";
