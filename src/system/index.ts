export {
  DEFAULT_CONFIG_PATH,
  REVISION_FILE,
  STATE_PATHS,
  SYSTEM_STATES,
  displayPathInRoot,
  resolveInRoot,
  type SystemState,
} from "./paths.js";
export { MAX_REVISION_BYTES, parseRevision, type RevisionParse } from "./revision.js";
export {
  readLocalStates,
  readStateRevision,
  type LocalStates,
  type StateReading,
} from "./state.js";
export {
  detectHostname,
  type DetectedHostname,
  type HostnameEnvironment,
  type HostnameSource,
} from "./hostname.js";
