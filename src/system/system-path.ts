/**
 * The system store path each state runs: where `/run/current-system`,
 * `/run/booted-system` and the system profile lead, followed link by link
 * inside the root until a path directly under `/nix/store`.
 */

import path from "node:path";

import { errorMessage, hasErrorCode } from "../core/index.js";
import {
  STATE_PATHS,
  displayPathInRoot,
  linkAt,
  resolveInRootSync,
  type LinkMemo,
  type SystemState,
} from "./paths.js";

/** A store path directly under `/nix/store`: 32 nix32 characters, a dash, a valid name. */
const SYSTEM_STORE_PATH = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]{1,211}$/;

const MAX_HOPS = 40;

/** True when `value` is a store path as `current_system` and its siblings hold. */
export function isSystemStorePath(value: string): boolean {
  return SYSTEM_STORE_PATH.test(value);
}

export interface SystemPathReading {
  state: SystemState;
  /** The store path, or null when the state does not lead into the store. */
  storePath: string | null;
  /** Why the link exists but could not be followed. */
  problem: string | undefined;
}

/** What `logical` is inside `root` (see `linkAt`), its parent folders followed inside the root. */
function linkIn(root: string, logical: string, memo: LinkMemo): string | false | null {
  const parent = resolveInRootSync(root, path.posix.dirname(logical), memo);
  return linkAt(`${parent === "/" ? "" : parent}/${path.posix.basename(logical)}`, memo);
}

/**
 * The store path `state` runs under `root`, following its links (the
 * profile's `system-N-link` included) until one names a path directly
 * under `/nix/store` that exists. Never throws for I/O errors.
 */
export function readSystemPath(
  root: string,
  state: SystemState,
  memo: LinkMemo = new Map(),
): SystemPathReading {
  const shown = displayPathInRoot(root, STATE_PATHS[state]);
  let logical = STATE_PATHS[state];
  try {
    for (let hop = 0; hop <= MAX_HOPS; hop++) {
      const target = linkIn(root, logical, memo);
      if (target === null) return { state, storePath: null, problem: undefined };
      if (target === false) {
        return {
          state,
          storePath: isSystemStorePath(logical) ? logical : null,
          problem: undefined,
        };
      }
      logical = path.posix.normalize(
        target.startsWith("/") ? target : path.posix.join(path.posix.dirname(logical), target),
      );
      if (isSystemStorePath(logical)) {
        const exists = linkIn(root, logical, memo) !== null;
        return { state, storePath: exists ? logical : null, problem: undefined };
      }
    }
    return { state, storePath: null, problem: `too many symbolic links resolving ${shown}` };
  } catch (err) {
    if (hasErrorCode(err, "EACCES", "EPERM")) {
      return { state, storePath: null, problem: `permission denied reading ${shown}` };
    }
    if (hasErrorCode(err, "ELOOP")) {
      return { state, storePath: null, problem: `too many symbolic links resolving ${shown}` };
    }
    return { state, storePath: null, problem: `cannot read ${shown}: ${errorMessage(err)}` };
  }
}
