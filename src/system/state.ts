/**
 * The local host's three system states and the git revision that built each.
 */

import { closeSync, openSync, readSync } from "node:fs";

import { errorMessage, hasErrorCode } from "../core/index.js";
import {
  REVISION_FILE,
  STATE_PATHS,
  SYSTEM_STATES,
  displayPathInRoot,
  resolveInRootSync,
  type LinkMemo,
  type SystemState,
} from "./paths.js";
import { MAX_REVISION_BYTES, parseRevision } from "./revision.js";

export interface StateReading {
  state: SystemState;
  /** The revision file, as the user would name it (under `--root`). */
  path: string;
  /** The revision, or null when unknown (missing link, file or value). */
  revision: string | null;
  /** Why the file could not be used, when it exists but is unreadable or bad. */
  problem: string | undefined;
}

export type LocalStates = Record<SystemState, StateReading>;

// Synchronous: three small local files, cheaper read directly than through
// the thread pool (which a short-lived CLI would otherwise start for them).
function readPrefix(file: string, limit: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const buffer = Buffer.alloc(limit);
    const bytesRead = readSync(fd, buffer, 0, limit, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    closeSync(fd);
  }
}

/** Reads one state's revision file under `root`. Never throws for I/O errors. */
export function readStateRevision(root: string, state: SystemState, memo?: LinkMemo): StateReading {
  const logical = `${STATE_PATHS[state]}/${REVISION_FILE}`;
  const shown = displayPathInRoot(root, logical);
  const unknown = (problem?: string): StateReading => ({
    state,
    path: shown,
    revision: null,
    problem,
  });
  let raw: Buffer;
  try {
    const physical = resolveInRootSync(root, logical, memo);
    // One byte past the limit tells an oversized file from one at the limit.
    raw = readPrefix(physical, MAX_REVISION_BYTES + 1);
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return unknown();
    if (hasErrorCode(err, "EACCES", "EPERM")) return unknown(`permission denied reading ${shown}`);
    if (hasErrorCode(err, "EISDIR")) return unknown(`${shown} is a directory, not a file`);
    if (hasErrorCode(err, "ELOOP")) return unknown(`too many symbolic links resolving ${shown}`);
    return unknown(`cannot read ${shown}: ${errorMessage(err)}`);
  }
  const parsed = parseRevision(raw);
  if (!parsed.ok) return unknown(`${shown}: ${parsed.reason}`);
  return { state, path: shown, revision: parsed.revision, problem: undefined };
}

/**
 * Reads all three states' revisions. `memo` shares what this reading learns
 * of the root's links with the caller's other reads of the same moment.
 */
export function readLocalStates(root: string, memo: LinkMemo = new Map()): Promise<LocalStates> {
  return new Promise((resolve) => {
    const [current, booted, nextboot] = SYSTEM_STATES.map((state) =>
      readStateRevision(root, state, memo),
    );
    if (!current || !booted || !nextboot) throw new Error("readLocalStates: missing state");
    resolve({ current, booted, nextboot });
  });
}
