export {
  DEFAULT_CONFIG_PATH,
  STATE_PATHS,
  SYSTEM_STATES,
  displayPathInRoot,
  resolveInRoot,
  type LinkMemo,
} from "./paths.js";
export { parseRevision } from "./revision.js";
export { readLocalStates, type LocalStates } from "./state.js";
export { detectHostname, type DetectedHostname, type HostnameEnvironment } from "./hostname.js";
export { isSystemStorePath, readSystemPath, type SystemPathReading } from "./system-path.js";
