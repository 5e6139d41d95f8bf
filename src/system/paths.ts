/**
 * System paths, resolved under an optional root directory the way a chroot
 * would: absolute symlink targets (`/run/current-system -> /nix/store/...`)
 * are followed inside the root, never on the host.
 */

import { lstatSync, readlinkSync } from "node:fs";
import path from "node:path";

import { hasErrorCode } from "../core/index.js";

export type SystemState = "current" | "booted" | "nextboot";

export const SYSTEM_STATES: readonly SystemState[] = ["current", "booted", "nextboot"];

/** Where each system state lives on a NixOS host. */
export const STATE_PATHS: Readonly<Record<SystemState, string>> = {
  current: "/run/current-system",
  booted: "/run/booted-system",
  nextboot: "/nix/var/nix/profiles/system",
};

/** The revision file inside a system closure. */
export const REVISION_FILE = "sw/share/ogygia/build-revision";

/** The configuration file inside the current system. */
export const DEFAULT_CONFIG_PATH = "/run/current-system/sw/share/ogygia/config.toml";

const MAX_SYMLINKS = 40;

/** The path as the user would recognise it: `logical` under `root`. */
export function displayPathInRoot(root: string, logical: string): string {
  return root === "/" ? logical : path.join(path.resolve(root), logical);
}

/**
 * Resolves `logical` (an absolute path inside the system at `root`) to a path
 * on this machine, following symlinks with `root` as `/`. A component that does
 * not exist ends resolution early; reading the result then fails with the
 * real error (ENOENT, EACCES), which callers handle.
 */
export function resolveInRoot(root: string, logical: string, memo?: LinkMemo): Promise<string> {
  return new Promise((resolve) => {
    resolve(resolveInRootSync(root, logical, memo));
  });
}

/**
 * `resolveInRoot` with synchronous calls: a handful of `lstat`s on local
 * files, cheaper than a round trip through the thread pool each (which a
 * short-lived CLI would otherwise start for them).
 */
/**
 * What one reading of a root learnt of its paths, by physical path: `null`
 * missing, `false` not a symbolic link, else the link's target. A status
 * start reads the same directories for each state, its system path and the
 * default configuration; a memo shared by those reads asks each path once.
 * Make one per reading (a long-running caller a new one each time): it
 * never sees later changes.
 */
export type LinkMemo = Map<string, string | false | null>;

/**
 * What `physical` is: `null` missing (under a file counts as missing),
 * `false` not a symbolic link, else the link's target, from `memo` when an
 * earlier read asked. Other errors (EACCES) are thrown and not remembered.
 */
export function linkAt(physical: string, memo?: LinkMemo): string | false | null {
  const known = memo?.get(physical);
  if (known !== undefined) return known;
  let found: string | false | null;
  try {
    // A missing path is common (the default config.toml, no next boot yet):
    // asked without an exception, which costs a start ~0.4 ms the first time.
    const stat = lstatSync(physical, { throwIfNoEntry: false });
    found = stat === undefined ? null : stat.isSymbolicLink() ? readlinkSync(physical) : false;
  } catch (err) {
    if (!hasErrorCode(err, "ENOTDIR")) throw err;
    found = null;
  }
  memo?.set(physical, found);
  return found;
}

export function resolveInRootSync(root: string, logical: string, memo?: LinkMemo): string {
  if (root === "/") return logical;
  const base = path.resolve(root);
  const top = base === "/" ? "" : base;
  // Components still to walk, the next one last; `walked[i]` is the physical
  // path after i + 1 components. Strings are joined by hand: this runs for
  // every state on every start, and `path.join` per component cost a start
  // more than the lstat calls themselves.
  const pending = components(logical).reverse();
  const walked: string[] = [];
  let hops = 0;
  for (let part = pending.pop(); part !== undefined; part = pending.pop()) {
    if (part === "..") {
      walked.pop();
      continue;
    }
    const candidate = `${walked.at(-1) ?? top}/${part}`;
    let target: string | false | null;
    try {
      target = linkAt(candidate, memo);
    } catch {
      // Unreadable (EACCES): reading the result says why.
      return path.join(candidate, ...pending.reverse());
    }
    if (target === null) return path.join(candidate, ...pending.reverse());
    if (target === false) {
      walked.push(candidate);
      continue;
    }
    hops += 1;
    if (hops > MAX_SYMLINKS) {
      const err = new Error(`too many levels of symbolic links resolving ${logical} under ${root}`);
      Object.assign(err, { code: "ELOOP", path: candidate });
      throw err;
    }
    if (target.startsWith("/")) walked.length = 0;
    pending.push(...components(target).reverse());
  }
  return walked.at(-1) ?? base;
}

/** A path's components, without empty ones and `.`. */
function components(value: string): string[] {
  return value.split("/").filter((part) => part !== "" && part !== ".");
}
