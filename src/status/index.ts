export {
  REVISION_OPTION,
  collectStatus,
  localHostMatcher,
  missingRevisionFiles,
} from "./collect.js";
export { renderStatusText, statusJson } from "./render.js";
export { watchPrinter, watchStatus, type WatchOptions } from "./watch.js";
export type { HostStatus, StatusReport } from "./collect.js";
