export {
  collectStatus,
  compareRows,
  configSource,
  isLocalHost,
  localHostMatcher,
  sortRows,
  naturalCompare,
  trimDomain,
  type HostStatus,
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
