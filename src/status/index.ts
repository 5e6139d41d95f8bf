export {
  buildReport,
  collectStatus,
  compareRows,
  isLocalHost,
  localHostMatcher,
  sortRows,
  trimDomain,
  type FleetReading,
  type HostStatus,
  type ReportInputs,
  type StatusMode,
  type StatusOptions,
  type StatusReport,
} from "./collect.js";
export { bannerLine, renderStatusText, statusJson } from "./render.js";
export { watchPrinter, watchStatus, type WatchOptions, type WatchPrinter } from "./watch.js";
