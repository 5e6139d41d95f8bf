export {
  buildReport,
  collectStatus,
  compareRows,
  configSource,
  isLocalHost,
  localHostMatcher,
  sortRows,
  naturalCompare,
  trimDomain,
  type FleetReading,
  type HostStatus,
  type ReportInputs,
  type StatusMode,
  type StatusOptions,
  type StatusReport,
} from "./collect.js";
export {
  REVISION_WIDTH,
  bannerLine,
  formatTable,
  renderStatusText,
  statusJson,
  type OutputLine,
} from "./render.js";
export { watchPrinter, watchStatus, type WatchOptions, type WatchPrinter } from "./watch.js";
