/**
 * System paths, resolved under an optional root directory the way a chroot
 * would: absolute symlink targets (`/run/current-system -> /nix/store/...`)
 * are followed inside the root, never on the host.
 */

import { lstatSync, readlinkSync } from "node:fs";
import path from "node:path";

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
export function resolveInRoot(root: string, logical: string): Promise<string> {
  return new Promise((resolve) => {
    resolve(resolveInRootSync(root, logical));
  });
}

/**
 * `resolveInRoot` with synchronous calls: a handful of `lstat`s on local
 * files, cheaper than a round trip through the thread pool each (which a
 * short-lived CLI would otherwise start for them).
 */
export function resolveInRootSync(root: string, logical: string): string {
  if (root === "/") return logical;
  const base = path.resolve(root);
  let pending = logical.split("/").filter((part) => part !== "" && part !== ".");
  let resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const [part, ...rest] = pending;
    pending = rest;
    if (part === undefined) break;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const candidate = path.join(base, ...resolved, part);
    let stat: ReturnType<typeof lstatSync>;
    try {
      // A missing component is common (the default config.toml): asked
      // without an exception, which costs a start ~0.4 ms the first time.
      stat = lstatSync(candidate, { throwIfNoEntry: false });
    } catch {
      return path.join(candidate, ...pending);
    }
    if (stat === undefined) return path.join(candidate, ...pending);
    if (!stat.isSymbolicLink()) {
      resolved.push(part);
      continue;
    }
    hops += 1;
    if (hops > MAX_SYMLINKS) {
      const err = new Error(`too many levels of symbolic links resolving ${logical} under ${root}`);
      Object.assign(err, { code: "ELOOP", path: candidate });
      throw err;
    }
    const target = readlinkSync(candidate);
    if (target.startsWith("/")) resolved = [];
    pending = [...target.split("/").filter((p) => p !== "" && p !== "."), ...pending];
  }
  return path.join(base, ...resolved);
}
