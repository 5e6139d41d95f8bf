/**
 * Distributed builds from the live fleet: hosts offering builds publish a
 * builder entry under their publisher's lease (`announce.ts`); `ogygia
 * builders` turns the online ones into Nix's machines file, once or kept
 * current by a daemon that probes them over SSH and backs off the failing
 * ones as Hydra does (`daemon.ts`).
 */

export {
  listBuilders,
  runBuildersDaemon,
  startBuilderAnnouncement,
  type BuilderAnnouncement,
  type BuilderRow,
  type BuildersDaemonRunOptions,
  type BuildersList,
  type BuildersOptions,
} from "./command.js";
export { BuildersDaemon, MAX_BACKOFF_STEPS, backoffMs, writeAtomically } from "./daemon.js";
export {
  compareBuilders,
  decodeHostKey,
  hostKeyLine,
  machinesFile,
  machinesLine,
  parseBuilderEntry,
  parseBuilderUri,
  serializeBuilderEntry,
  type Builder,
  type BuilderEntry,
} from "./entry.js";
export { buildersOf, type MalformedEntry } from "./fleet.js";
export { localBuilderEntry, nixSystems } from "./announce.js";
export { createProber, type ProbeResult, type Prober } from "./probe.js";
export { renderBuilders, buildersJson } from "./render.js";
