/**
 * Whether the host needs a reboot to run its next-boot system: the check the
 * reboot logic of nixpkgs' `system.autoUpgrade` makes. It compares
 * `readlink` of `kernel`, `initrd` and `kernel-modules` in the booted system
 * with the same links in the system profile; any difference needs a reboot.
 */

import { readlink, stat } from "node:fs/promises";
import path from "node:path";

import { errorMessage, hasErrorCode } from "../core/index.js";
import { displayPathInRoot, resolveInRoot } from "../system/index.js";

/** The links that decide whether a switch needs a reboot. */
export const BOOT_LINKS = ["kernel", "initrd", "kernel-modules"] as const;

export type BootLink = (typeof BOOT_LINKS)[number];

/** Each link's target as `readlink` prints it; null where there is no such link. */
export type BootLinks = Record<BootLink, string | null>;

export interface BootLinksReading {
  /** Null when the system itself is missing or cannot be read. */
  links: BootLinks | null;
  /** Why the system exists but could not be read (permissions, loops). */
  problem: string | undefined;
}

/**
 * Compares the booted system's links with the next boot's. Null (unknown)
 * when either system is missing. A link missing on one side and present on
 * the other is a difference; missing on both (a container without a
 * kernel) is not, as with `readlink` in nixpkgs.
 */
export function rebootRequired(booted: BootLinks | null, next: BootLinks | null): boolean | null {
  if (booted === null || next === null) return null;
  return BOOT_LINKS.some((link) => booted[link] !== next[link]);
}

async function readLinkOrNull(file: string): Promise<string | null> {
  try {
    return await readlink(file);
  } catch (err) {
    // ENOENT: no such link; EINVAL: a file, not a link. `readlink` prints nothing for either.
    if (hasErrorCode(err, "ENOENT", "ENOTDIR", "EINVAL")) return null;
    throw err;
  }
}

/**
 * Reads the boot links of the system at `logical` (`/run/booted-system` or
 * `/nix/var/nix/profiles/system`) under `root`, following symlinks inside
 * the root. Never throws for I/O errors.
 */
export async function readBootLinks(root: string, logical: string): Promise<BootLinksReading> {
  const shown = displayPathInRoot(root, logical);
  try {
    const system = await resolveInRoot(root, logical);
    if (!(await stat(system)).isDirectory()) {
      return { links: null, problem: `${shown} is not a directory` };
    }
    const [kernel, initrd, modules] = await Promise.all(
      BOOT_LINKS.map((link) => readLinkOrNull(path.join(system, link))),
    );
    return {
      links: { kernel: kernel ?? null, initrd: initrd ?? null, "kernel-modules": modules ?? null },
      problem: undefined,
    };
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return { links: null, problem: undefined };
    if (hasErrorCode(err, "EACCES", "EPERM")) {
      return { links: null, problem: `permission denied reading ${shown}` };
    }
    if (hasErrorCode(err, "ELOOP")) {
      return { links: null, problem: `too many symbolic links resolving ${shown}` };
    }
    return { links: null, problem: `cannot read ${shown}: ${errorMessage(err)}` };
  }
}
