/**
 * Read-only access to a Nix store's database (`<root>/nix/var/nix/db/db.sqlite`).
 *
 * Nix 2.8 keeps this database in WAL mode and writes to it at any time. We
 * open it read-only but *without* `immutable`/`nolock`: the connection joins
 * WAL locking through the `-shm` file (which SQLite creates or opens; as root
 * it may write it, otherwise it falls back to a read-only `-shm`), so each
 * query sees the latest commit. A busy timeout covers WAL recovery and
 * checkpoints. No read transaction is held between calls, so we never pin
 * the WAL. `PRAGMA data_version` tells cheaply whether anyone committed.
 */

import { statSync } from "node:fs";

import { OgygiaError, errorMessage, hasErrorCode } from "../core/index.js";
import { parseHash, type Hash } from "./hash.js";
import { isSqliteError, openReadOnly, type SqliteConnection } from "./sqlite.js";
import {
  isHashPart,
  isStorePath,
  parseStorePath,
  storeDbPath,
  storeLocation,
  type StoreLocation,
} from "./store-path.js";

/** What the store knows about a valid path (Nix's `ValidPathInfo`). */
export interface PathInfo {
  storePath: string;
  narHash: Hash;
  /** 0 when the database does not know it (very old registrations). */
  narSize: number;
  /** Full store paths, sorted. */
  references: string[];
  deriver: string | undefined;
  /** Seconds since the epoch. */
  registrationTime: number;
  /** Built locally (not substituted or copied). */
  ultimate: boolean;
  /** Sorted, unique. */
  sigs: string[];
  ca: string | undefined;
}

export interface StoreDb {
  readonly location: StoreLocation;
  readonly dbPath: string;
  /** The path's info, or undefined when it is not valid. */
  queryPathInfo(storePath: string): PathInfo | undefined;
  /** The valid store path with this hash part, if any (Nix's `queryPathFromHashPart`). */
  queryPathFromHashPart(hashPart: string): string | undefined;
  /** Info of the valid path with this hash part, if any: what a narinfo request needs. */
  queryPathInfoByHashPart(hashPart: string): PathInfo | undefined;
  isValidPath(storePath: string): boolean;
  /** Paths `storePath` refers to (sorted); empty when it is not valid. */
  queryReferences(storePath: string): string[];
  /** Valid paths that refer to `storePath` (sorted). */
  queryReferrers(storePath: string): string[];
  /** Infos of the valid paths whose deriver is `drvPath` (its outputs here); a table scan. */
  queryOutputsOfDeriver(drvPath: string): PathInfo[];
  /** Every valid path, sorted. */
  queryAllValidPaths(): string[];
  /** Number of valid paths. */
  countValidPaths(): number;
  /** SQLite's `data_version`: changes whenever another connection commits. */
  dataVersion(): number;
  /** True when the store changed since the previous call (or since opening). */
  hasChanged(): boolean;
  close(): void;
}

export interface OpenStoreDbOptions {
  /** Physical root of the store: `/` (default) or a chroot store's directory. */
  root?: string;
  /** Logical store directory (default `/nix/store`). */
  storeDir?: string;
  /** Override the database file (default `<root>/nix/var/nix/db/db.sqlite`). */
  dbPath?: string;
  /** How long a query waits for a lock before failing (default 10 s). */
  busyTimeoutMs?: number;
}

interface PathRow {
  id: number;
  /** Space-joined reference paths (store paths contain no spaces). */
  refs: string | null;
  path: string;
  hash: string;
  registrationTime: number;
  deriver: string | null;
  narSize: number | null;
  ultimate: number | null;
  sigs: string | null;
  ca: string | null;
}

const COLUMNS = "id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca";
// References in the same statement: one statement is one read snapshot, and
// one round trip instead of a transaction around two queries.
const REFS_COLUMN =
  "(SELECT group_concat(r.path, ' ') FROM Refs JOIN ValidPaths r ON r.id = Refs.reference WHERE Refs.referrer = v.id) AS refs";
const REQUIRED_COLUMNS = ["id", "path", "hash", "registrationTime", "deriver", "narSize", "sigs"];

function dbError(file: string, reason: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_DB", `Nix store database ${file}: ${reason}`, { cause });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Opens a store database read-only; throws ERR_OGYGIA_NIX_DB when it is missing or not Nix's. */
export function openStoreDb(options: OpenStoreDbOptions = {}): StoreDb {
  const location = storeLocation(options);
  const file = options.dbPath ?? storeDbPath(location);
  try {
    statSync(file);
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) {
      throw new OgygiaError("ERR_OGYGIA_NIX_DB", `Nix store database ${file} does not exist`, {
        hint: `Is ${location.root} the root of a Nix store? Its database lives at nix/var/nix/db/db.sqlite.`,
        cause: err,
      });
    }
    throw dbError(file, errorMessage(err), err);
  }

  let db: SqliteConnection;
  try {
    db = openReadOnly(file, { busyTimeoutMs: options.busyTimeoutMs ?? 10_000 });
  } catch (err) {
    throw dbError(file, `cannot open: ${errorMessage(err)}`, err);
  }

  const guarded = <T>(what: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (isSqliteError(err)) throw dbError(file, `${what}: ${errorMessage(err)}`, err);
      throw err;
    }
  };

  const columns = guarded("reading the schema", () =>
    db.prepare<{ name: string }>("SELECT name FROM pragma_table_info('ValidPaths')").all(),
  ).map((row) => row.name);
  const missing = REQUIRED_COLUMNS.filter((c) => !columns.includes(c));
  if (missing.length > 0) {
    db.close();
    throw dbError(file, `not a Nix store database (ValidPaths lacks ${missing.join(", ")})`);
  }
  const hasCa = columns.includes("ca");
  const hasUltimate = columns.includes("ultimate");
  const selectColumns = `${COLUMNS.replace(", ca", hasCa ? ", ca" : ", NULL AS ca").replace(
    ", ultimate",
    hasUltimate ? ", ultimate" : ", NULL AS ultimate",
  )}, ${REFS_COLUMN}`;

  const statements = guarded("preparing queries", () => ({
    byPath: db.prepare<PathRow>(`SELECT ${selectColumns} FROM ValidPaths v WHERE path = ?`),
    // ValidPaths.path is unique, hence indexed: a range scan finds a hash part.
    byRange: db.prepare<PathRow>(
      `SELECT ${selectColumns} FROM ValidPaths v WHERE path >= ? AND path < ? ORDER BY path LIMIT 1`,
    ),
    pathByRange: db.prepare<{ path: string }>(
      "SELECT path FROM ValidPaths WHERE path >= ? AND path < ? ORDER BY path LIMIT 1",
    ),
    valid: db.prepare<{ id: number }>("SELECT id FROM ValidPaths WHERE path = ?"),
    // Prepared once: preparing it per call cost ~12 µs, a daemon asks often.
    dataVersion: db.prepare<{ data_version: number }>("PRAGMA data_version"),
    references: db.prepare<{ path: string }>(
      "SELECT r.path FROM ValidPaths v JOIN Refs ON Refs.referrer = v.id JOIN ValidPaths r ON r.id = Refs.reference WHERE v.path = ?",
    ),
    referrers: db.prepare<{ path: string }>(
      "SELECT r.path FROM ValidPaths v JOIN Refs ON Refs.reference = v.id JOIN ValidPaths r ON r.id = Refs.referrer WHERE v.path = ?",
    ),
    all: db.prepare<{ path: string }>("SELECT path FROM ValidPaths ORDER BY path"),
    // ValidPaths.deriver has no index: asked only for build logs.
    byDeriver: db.prepare<PathRow>(`SELECT ${selectColumns} FROM ValidPaths v WHERE deriver = ?`),
    count: db.prepare<{ n: number }>("SELECT count(*) AS n FROM ValidPaths"),
  }));

  const { storeDir } = location;
  const hashRange = (hashPart: string): [string, string] => {
    // Every path with this hash part sorts in ['<dir>/<hash>-', '<dir>/<hash>.'): '.' follows '-'.
    const prefix = `${storeDir}/${hashPart}`;
    return [`${prefix}-`, `${prefix}.`];
  };

  const toInfo = (row: PathRow): PathInfo => {
    let narHash: Hash;
    try {
      narHash = parseHash(row.hash);
    } catch (err) {
      throw dbError(file, `path ${row.path} has an invalid hash '${row.hash}'`, err);
    }
    const references = row.refs === null ? [] : row.refs.split(" ").sort(compare);
    const sigs = [...new Set((row.sigs ?? "").split(/\s+/).filter((s) => s !== ""))].sort(compare);
    return {
      storePath: row.path,
      narHash,
      narSize: row.narSize ?? 0,
      references,
      deriver: row.deriver !== null && isStorePath(row.deriver, storeDir) ? row.deriver : undefined,
      registrationTime: row.registrationTime,
      ultimate: row.ultimate !== null && row.ultimate !== 0,
      sigs,
      ca: row.ca === null || row.ca === "" ? undefined : row.ca,
    };
  };

  const checkHashPart = (hashPart: string): void => {
    if (!isHashPart(hashPart)) {
      throw new OgygiaError(
        "ERR_OGYGIA_NIX_STORE_PATH",
        `invalid hash part '${hashPart}': expected 32 nix32 characters`,
      );
    }
  };

  let lastVersion: number | undefined;
  const dataVersion = (): number =>
    guarded("reading data_version", () => Number(statements.dataVersion.get()?.data_version));
  lastVersion = dataVersion();

  return {
    location,
    dbPath: file,
    queryPathInfo(storePath) {
      parseStorePath(storePath, storeDir);
      const row = guarded(`querying ${storePath}`, () => statements.byPath.get(storePath));
      return row === undefined ? undefined : toInfo(row);
    },
    queryPathFromHashPart(hashPart) {
      checkHashPart(hashPart);
      const [low, high] = hashRange(hashPart);
      return guarded(`looking up hash part ${hashPart}`, () =>
        statements.pathByRange.get(low, high),
      )?.path;
    },
    queryPathInfoByHashPart(hashPart) {
      checkHashPart(hashPart);
      const [low, high] = hashRange(hashPart);
      const row = guarded(`looking up hash part ${hashPart}`, () =>
        statements.byRange.get(low, high),
      );
      return row === undefined ? undefined : toInfo(row);
    },
    isValidPath(storePath) {
      parseStorePath(storePath, storeDir);
      return guarded(`querying ${storePath}`, () => statements.valid.get(storePath)) !== undefined;
    },
    queryReferences(storePath) {
      parseStorePath(storePath, storeDir);
      return guarded(`querying references of ${storePath}`, () =>
        statements.references.all(storePath),
      )
        .map((r) => r.path)
        .sort(compare);
    },
    queryReferrers(storePath) {
      parseStorePath(storePath, storeDir);
      return guarded(`querying referrers of ${storePath}`, () =>
        statements.referrers.all(storePath),
      )
        .map((r) => r.path)
        .sort(compare);
    },
    queryOutputsOfDeriver(drvPath) {
      parseStorePath(drvPath, storeDir);
      return guarded(`querying the outputs of ${drvPath}`, () =>
        statements.byDeriver.all(drvPath),
      ).map(toInfo);
    },
    queryAllValidPaths() {
      return guarded("listing valid paths", () => statements.all.all()).map((r) => r.path);
    },
    countValidPaths() {
      return guarded("counting valid paths", () => statements.count.get())?.n ?? 0;
    },
    dataVersion,
    hasChanged() {
      const version = dataVersion();
      const changed = version !== lastVersion;
      lastVersion = version;
      return changed;
    },
    close() {
      db.close();
    },
  };
}
