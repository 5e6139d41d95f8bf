/**
 * The one adapter around better-sqlite3: read-only connections and prepared
 * statements. Nothing else in the code base imports the driver.
 */

import Database from "better-sqlite3";

export interface SqliteStatement<Row> {
  get(...params: unknown[]): Row | undefined;
  all(...params: unknown[]): Row[];
}

export interface SqliteConnection {
  readonly file: string;
  prepare<Row>(sql: string): SqliteStatement<Row>;
  /** The value of a single-valued pragma, e.g. `data_version`. */
  pragma(name: string): unknown;
  close(): void;
}

/** A driver error (SQLITE_BUSY, SQLITE_CANTOPEN, ...), told apart from our own. */
export function isSqliteError(err: unknown): err is Error & { code: string } {
  return err instanceof Database.SqliteError;
}

/**
 * Opens `file` read-only. Without `immutable`, the connection takes part in
 * WAL locking and so sees commits that other processes make while it is open.
 */
export function openReadOnly(
  file: string,
  options: { busyTimeoutMs: number; cacheKiB?: number },
): SqliteConnection {
  const db = new Database(file, {
    readonly: true,
    fileMustExist: true,
    timeout: options.busyTimeoutMs,
  });
  // A page cache that holds the hot part of a large store's index (a
  // per-connection setting; SQLite drops it whenever another process commits).
  db.pragma(`cache_size = -${options.cacheKiB ?? 32768}`);
  return {
    file,
    prepare<Row>(sql: string): SqliteStatement<Row> {
      const statement = db.prepare<unknown[], Row>(sql);
      return {
        get: (...params) => statement.get(...params),
        all: (...params) => statement.all(...params),
      };
    },
    pragma(name: string): unknown {
      return db.pragma(name, { simple: true });
    },
    close(): void {
      db.close();
    },
  };
}
