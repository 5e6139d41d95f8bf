/**
 * Store paths (`/nix/store/<32 nix32 chars>-<name>`) and where a store lives.
 *
 * The logical store directory (`/nix/store`, what paths are called and what
 * hashes are computed over) is kept apart from the physical root (`/` for the
 * machine's store, `/tmp/x` for a chroot store whose files are under
 * `/tmp/x/nix/store` and whose database is `/tmp/x/nix/var/nix/db`).
 */

import path from "node:path";

import { OgygiaError } from "../core/index.js";
import { compressHash, formatHash, hashBytes, type Hash } from "./hash.js";
import { encodeNix32, isNix32 } from "./nix32.js";

export const DEFAULT_STORE_DIR = "/nix/store";
/** Characters in a store path's hash part. */
export const HASH_PART_LENGTH = 32;
/** Nix's limit on the name after the hash part. */
export const MAX_NAME_LENGTH = 211;

export interface StorePath {
  /** The full logical path, e.g. `/nix/store/<hash>-hello-2.12`. */
  readonly path: string;
  /** `<hash>-<name>` */
  readonly baseName: string;
  /** The 32 nix32 characters. */
  readonly hashPart: string;
  /** What follows `<hash>-`. */
  readonly name: string;
}

function storePathError(what: string, reason: string): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_STORE_PATH", `invalid store path '${what}': ${reason}`);
}

function nameCharAllowed(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) || // 0-9
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x41 && code <= 0x5a) || // A-Z
    code === 0x2b || // +
    code === 0x2d || // -
    code === 0x2e || // .
    code === 0x5f || // _
    code === 0x3f || // ?
    code === 0x3d // =
  );
}

/**
 * Why `name` is not a valid store path name, or undefined when it is. Nix's
 * rules: 1 to 211 characters from `[A-Za-z0-9+\-._?=]`, and (as current Nix
 * enforces) the first dash-separated component is not `.` or `..`.
 */
export function storePathNameProblem(name: string): string | undefined {
  if (name.length === 0) return "the name is empty";
  if (name.length > MAX_NAME_LENGTH) {
    return `the name is longer than ${MAX_NAME_LENGTH} characters`;
  }
  for (let i = 0; i < name.length; i++) {
    if (!nameCharAllowed(name.charCodeAt(i))) {
      return `the name contains the illegal character '${name.charAt(i)}'`;
    }
  }
  if (name.charCodeAt(0) === 0x2e) {
    const first = name.split("-", 1)[0];
    if (first === "." || first === "..") return `the name's first component is '${first}'`;
  }
  return undefined;
}

/** True when `text` is a store path hash part (32 nix32 characters). */
export function isHashPart(text: string): boolean {
  return text.length === HASH_PART_LENGTH && isNix32(text);
}

function baseNameProblem(baseName: string): string | undefined {
  if (baseName.length < HASH_PART_LENGTH + 2) return "too short to be a store path";
  const hashPart = baseName.slice(0, HASH_PART_LENGTH);
  if (!isNix32(hashPart)) return `the hash part '${hashPart}' is not nix32`;
  if (baseName.charAt(HASH_PART_LENGTH) !== "-") {
    return "no '-' after the 32-character hash part";
  }
  return storePathNameProblem(baseName.slice(HASH_PART_LENGTH + 1));
}

/** Parses `<hash>-<name>` (the last component of a store path). */
export function parseStorePathBaseName(baseName: string, storeDir = DEFAULT_STORE_DIR): StorePath {
  const problem = baseNameProblem(baseName);
  if (problem !== undefined) throw storePathError(baseName, problem);
  return {
    path: `${storeDir}/${baseName}`,
    baseName,
    hashPart: baseName.slice(0, HASH_PART_LENGTH),
    name: baseName.slice(HASH_PART_LENGTH + 1),
  };
}

/** Parses a full store path directly under `storeDir` (no sub-path). */
export function parseStorePath(text: string, storeDir = DEFAULT_STORE_DIR): StorePath {
  const prefix = `${storeDir}/`;
  if (!text.startsWith(prefix)) throw storePathError(text, `it is not in ${storeDir}`);
  const baseName = text.slice(prefix.length);
  if (baseName.includes("/")) throw storePathError(text, "it names a file inside a store path");
  const problem = baseNameProblem(baseName);
  if (problem !== undefined) throw storePathError(text, problem);
  return {
    path: text,
    baseName,
    hashPart: baseName.slice(0, HASH_PART_LENGTH),
    name: baseName.slice(HASH_PART_LENGTH + 1),
  };
}

/** True when `text` is a valid store path under `storeDir`. */
export function isStorePath(text: string, storeDir = DEFAULT_STORE_DIR): boolean {
  try {
    parseStorePath(text, storeDir);
    return true;
  } catch (err) {
    if (err instanceof OgygiaError) return false;
    throw err;
  }
}

/** Where a store lives: its logical directory and its physical root. */
export interface StoreLocation {
  /** Logical store directory, `/nix/store` unless the store was built elsewhere. */
  readonly storeDir: string;
  /** Physical root: `/` for the machine's store, the chroot directory otherwise. */
  readonly root: string;
}

function checkAbsolute(what: string, value: string): string {
  if (!path.isAbsolute(value)) {
    throw new OgygiaError("ERR_OGYGIA_NIX_STORE_PATH", `${what} '${value}' is not absolute`);
  }
  const normal = path.normalize(value);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

/** A normalised store location; defaults to the machine's `/nix/store` at `/`. */
export function storeLocation(options: { root?: string; storeDir?: string } = {}): StoreLocation {
  const storeDir = checkAbsolute("store directory", options.storeDir ?? DEFAULT_STORE_DIR);
  if (storeDir === "/") {
    throw new OgygiaError("ERR_OGYGIA_NIX_STORE_PATH", "the store directory cannot be '/'");
  }
  return { storeDir, root: checkAbsolute("store root", options.root ?? "/") };
}

function underRoot(location: StoreLocation, logical: string): string {
  return location.root === "/" ? logical : path.join(location.root, logical);
}

/** The physical directory holding the store's files. */
export function realStoreDir(location: StoreLocation): string {
  return underRoot(location, location.storeDir);
}

/** The physical path of a store path (validated) or of a file inside one. */
export function physicalPath(location: StoreLocation, storePath: string): string {
  const prefix = `${location.storeDir}/`;
  const baseEnd = storePath.indexOf("/", prefix.length);
  const top = baseEnd < 0 ? storePath : storePath.slice(0, baseEnd);
  parseStorePath(top, location.storeDir);
  const rest = baseEnd < 0 ? "" : storePath.slice(baseEnd);
  if (rest.split("/").some((segment) => segment === "..")) {
    throw storePathError(storePath, "it contains '..'");
  }
  return underRoot(location, storePath);
}

/** The store database: `<root>/nix/var/nix/db/db.sqlite`. */
export function storeDbPath(location: StoreLocation): string {
  return underRoot(location, "/nix/var/nix/db/db.sqlite");
}

/**
 * Nix's `makeStorePath`: the path for `type` (e.g. `source`, `text:<refs>`,
 * `output:out`), an inner hash and a name.
 */
export function makeStorePath(
  type: string,
  inner: Hash,
  name: string,
  storeDir = DEFAULT_STORE_DIR,
): string {
  const problem = storePathNameProblem(name);
  if (problem !== undefined) throw storePathError(name, problem);
  const fingerprint = `${type}:${formatHash(inner, "base16")}:${storeDir}:${name}`;
  const hashPart = encodeNix32(compressHash(hashBytes("sha256", fingerprint).digest, 20));
  return `${storeDir}/${hashPart}-${name}`;
}

/** Sorts store paths as Nix orders a `StorePathSet` (by base name, bytewise). */
export function sortStorePaths(paths: Iterable<string>): string[] {
  return [...new Set(paths)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
