/**
 * Change impact across the fleet: `ogygia diff`, `ogygia who-runs` and
 * `ogygia impact`, over closures read from the local store or, through the
 * local ogygia-irisd, from any host of the fleet.
 */

export { ClosureReader, closureSize, type Closure, type PathEntry } from "./closure.js";
export { diffClosures, diffPackages, formatBytes, type ClosureDiff } from "./diff.js";
export { IrisdClient } from "./http.js";
export { openSources, storePathOfArgument, type SourceOptions, type Sources } from "./sources.js";
export { StoreFiles, decodeTree, type FileNode } from "./store-files.js";
export { systemChanges, type SystemChanges, type UnitChanges } from "./units.js";
export {
  matchesPattern,
  parsePattern,
  readRelease,
  runDiff,
  runImpact,
  runWhoRuns,
  type DiffResult,
  type ImpactResult,
  type WhoRunsResult,
} from "./run.js";
export { renderDiff, renderImpact, renderWhoRuns } from "./render.js";
