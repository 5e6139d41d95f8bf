export {
  REVISION_OPTION,
  collectStatus,
  localHostMatcher,
  missingRevisionFiles,
} from "./collect.js";
export { renderStatusText, statusJson } from "./render.js";
export { watchPrinter, watchStatus } from "./watch.js";
