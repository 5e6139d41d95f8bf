/**
 * The plumbing every command shares: the configuration, this host's name,
 * the configured fleet backend, and output (tables, JSON). A command's
 * folder imports these from here, never from another command's folder.
 */

export {
  configSource,
  loadContext,
  openBackend,
  openPublisher,
  startContext,
  type CommandOptions,
} from "./context.js";
export {
  REVISION_WIDTH,
  formatTable,
  jsonOutput,
  layoutTable,
  type Cell,
  type OutputLine,
} from "./output.js";
