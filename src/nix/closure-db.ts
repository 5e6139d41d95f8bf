/**
 * A whole closure from a store database in one query: Nix keeps every valid
 * path's closure valid, so a path the database has brings all of its
 * closure, with references and NAR sizes, without a query per path.
 */

import { OgygiaError, errorMessage } from "../core/index.js";
import { isSqliteError, openReadOnly, type SqliteConnection } from "./sqlite.js";

export interface ClosureRow {
  storePath: string;
  narSize: number;
  /** Full store paths. */
  references: string[];
}

export interface ClosureDb {
  /** The closure of `storePath`, or undefined when the database does not have it. */
  closure(storePath: string): ClosureRow[] | undefined;
  /** Every valid path and every reference, in two scans (for a graph kept in memory). */
  readGraph(): StoreGraphRows;
  /** SQLite's `data_version`: changes when another connection commits. */
  dataVersion(): number;
  close(): void;
}

/** The whole store's reference graph, as the database holds it. */
export interface StoreGraphRows {
  paths: {
    id: number;
    path: string;
    narSize: number | null;
    sigs: string | null;
    ca: string | null;
  }[];
  /** Ordered by referrer. */
  refs: { referrer: number; reference: number }[];
}

const CLOSURE_SQL = `
WITH RECURSIVE c(id) AS (
  SELECT id FROM ValidPaths WHERE path = ?
  UNION
  SELECT Refs.reference FROM Refs JOIN c ON Refs.referrer = c.id
)
SELECT v.path AS path, v.narSize AS narSize,
  (SELECT group_concat(r.path, ' ') FROM Refs JOIN ValidPaths r ON r.id = Refs.reference
    WHERE Refs.referrer = v.id) AS refs
FROM c JOIN ValidPaths v ON v.id = c.id`;

/** Opens the database at `dbPath` read-only for closure queries. */
export function openClosureDb(dbPath: string): ClosureDb {
  let db: SqliteConnection;
  try {
    db = openReadOnly(dbPath, { busyTimeoutMs: 10_000 });
  } catch (err) {
    throw new OgygiaError(
      "ERR_OGYGIA_NIX_DB",
      `Nix store database ${dbPath}: cannot open: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  const statement = db.prepare<{ path: string; narSize: number | null; refs: string | null }>(
    CLOSURE_SQL,
  );
  const allPaths = db.prepare<StoreGraphRows["paths"][number]>(
    "SELECT id, path, narSize, sigs, ca FROM ValidPaths",
  );
  const allRefs = db.prepare<StoreGraphRows["refs"][number]>(
    "SELECT referrer, reference FROM Refs ORDER BY referrer",
  );
  return {
    readGraph() {
      try {
        return { paths: allPaths.all(), refs: allRefs.all() };
      } catch (err) {
        if (!isSqliteError(err)) throw err;
        throw new OgygiaError(
          "ERR_OGYGIA_NIX_DB",
          `Nix store database ${dbPath}: reading the reference graph: ${errorMessage(err)}`,
          { cause: err },
        );
      }
    },
    dataVersion() {
      return Number(db.pragma("data_version"));
    },
    closure(storePath) {
      let rows;
      try {
        rows = statement.all(storePath);
      } catch (err) {
        if (!isSqliteError(err)) throw err;
        throw new OgygiaError(
          "ERR_OGYGIA_NIX_DB",
          `Nix store database ${dbPath}: querying the closure of ${storePath}: ${errorMessage(err)}`,
          { cause: err },
        );
      }
      if (rows.length === 0) return undefined;
      return rows.map((row) => ({
        storePath: row.path,
        narSize: row.narSize ?? 0,
        references: row.refs === null ? [] : row.refs.split(" "),
      }));
    },
    close() {
      db.close();
    },
  };
}
