/**
 * What changed between two closures, as `nvd` and `nix store diff-closures`
 * show it: paths grouped by package name (output suffix stripped, then
 * `builtins.parseDrvName`), versions compared per name.
 */

import { compareText } from "../core/index.js";
import { compareVersions, packageOfName, parseStorePath } from "../nix/index.js";
import { closureSize, type Closure } from "./closure.js";

export interface VersionChange {
  name: string;
  /** Versions only in the old closure, sorted as Nix compares versions ("" for none). */
  before: string[];
  /** Versions only in the new closure. */
  after: string[];
}

export interface PackageDiff {
  /** Names in both closures whose versions differ. */
  changed: VersionChange[];
  /** Names only in the new closure, with their versions. */
  added: { name: string; versions: string[] }[];
  /** Names only in the old closure. */
  removed: { name: string; versions: string[] }[];
}

export interface ClosureDiff extends PackageDiff {
  before: { path: string; paths: number; narSize: number };
  after: { path: string; paths: number; narSize: number };
  pathsAdded: number;
  pathsRemoved: number;
  /** NAR size of the new closure minus the old's, in bytes. */
  sizeDelta: number;
}

/** name → versions present, for a closure. */
export function packageVersions(paths: Iterable<string>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const path of paths) {
    const { name, version } = packageOfName(parseStorePath(path).name);
    let versions = out.get(name);
    if (versions === undefined) {
      versions = new Set();
      out.set(name, versions);
    }
    versions.add(version);
  }
  return out;
}

function sortVersions(versions: Iterable<string>): string[] {
  return [...versions].sort((a, b) => compareVersions(a, b) || compareText(a, b));
}

/** The package-level difference of two path sets. */
export function diffPackages(before: Iterable<string>, after: Iterable<string>): PackageDiff {
  const old = packageVersions(before);
  const neu = packageVersions(after);
  const names = [...new Set([...old.keys(), ...neu.keys()])].sort(compareText);
  const diff: PackageDiff = { changed: [], added: [], removed: [] };
  for (const name of names) {
    const a = old.get(name);
    const b = neu.get(name);
    if (a === undefined && b !== undefined) {
      diff.added.push({ name, versions: sortVersions(b) });
    } else if (b === undefined && a !== undefined) {
      diff.removed.push({ name, versions: sortVersions(a) });
    } else if (a !== undefined && b !== undefined) {
      const gone = [...a].filter((v) => !b.has(v));
      const come = [...b].filter((v) => !a.has(v));
      if (gone.length > 0 || come.length > 0) {
        diff.changed.push({ name, before: sortVersions(gone), after: sortVersions(come) });
      }
    }
  }
  return diff;
}

/** The difference of two closures: packages, path counts and NAR size. */
export function diffClosures(before: Closure, after: Closure): ClosureDiff {
  let pathsAdded = 0;
  let pathsRemoved = 0;
  for (const path of after.paths.keys()) if (!before.paths.has(path)) pathsAdded += 1;
  for (const path of before.paths.keys()) if (!after.paths.has(path)) pathsRemoved += 1;
  const beforeSize = closureSize(before);
  const afterSize = closureSize(after);
  return {
    before: { path: before.root, paths: before.paths.size, narSize: beforeSize },
    after: { path: after.root, paths: after.paths.size, narSize: afterSize },
    ...diffPackages(before.paths.keys(), after.paths.keys()),
    pathsAdded,
    pathsRemoved,
    sizeDelta: afterSize - beforeSize,
  };
}

/** Bytes as nvd and Nix print them: KiB, MiB or GiB with one decimal, signed when `signed`. */
export function formatBytes(bytes: number, signed = false): string {
  const sign = signed ? (bytes < 0 ? "-" : "+") : bytes < 0 ? "-" : "";
  let value = Math.abs(bytes) / 1024;
  let unit = "KiB";
  for (const next of ["MiB", "GiB", "TiB"]) {
    if (value < 1024) break;
    value /= 1024;
    unit = next;
  }
  return `${sign}${value.toFixed(1)} ${unit}`;
}

/** A version list as diff-closures shows it: `ε` for no version, `∅` for none at all. */
export function showVersions(versions: readonly string[]): string {
  return versions.length === 0 ? "∅" : versions.map((v) => (v === "" ? "ε" : v)).join(", ");
}
