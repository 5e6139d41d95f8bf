/**
 * The dashboard's memory of each host's states: one row per change it has
 * seen, in a SQLite database under the state folder, so the history
 * survives restarts. The one importer of better-sqlite3 in this folder.
 */

import { mkdirSync } from "node:fs";
import path from "node:path";

import Database from "better-sqlite3";

import { OgygiaError } from "../core/index.js";
import type { HistoryEntry, HostJson } from "./wire.js";

/** Entries a host's history answer holds at most (the newest). */
export const HISTORY_LIMIT = 1000;

interface Row {
  host: string;
  at: string;
  current: string | null;
  booted: string | null;
  nextboot: string | null;
  online: number | null;
  reboot_required: number | null;
}

type Tracked = Omit<HistoryEntry, "at">;

function tracked(host: HostJson): Tracked {
  return {
    current: host.current,
    booted: host.booted,
    nextboot: host.nextboot,
    online: host.online,
    rebootRequired: host.rebootRequired,
  };
}

function sameTracked(a: Tracked, b: Tracked): boolean {
  return (
    a.current === b.current &&
    a.booted === b.booted &&
    a.nextboot === b.nextboot &&
    a.online === b.online &&
    a.rebootRequired === b.rebootRequired
  );
}

function fromFlag(value: number | null): boolean | null {
  return value === null ? null : value !== 0;
}

function toFlag(value: boolean | null): number | null {
  return value === null ? null : value ? 1 : 0;
}

export interface HistoryStore {
  readonly file: string;
  /** Records the hosts whose states differ from what was last recorded. Returns how many. */
  record(hosts: Iterable<HostJson>, at: Date): number;
  /** A host's changes, oldest first (at most `HISTORY_LIMIT`, the newest). */
  history(host: string): HistoryEntry[];
  /**
   * Forgets changes seen before `before`, keeping each host's newest entry
   * (what it runs now), and every entry of hosts that are gone (not in
   * `present`) whose newest entry is that old. Returns the entries removed.
   */
  prune(before: Date, present: ReadonlySet<string>): number;
  close(): void;
}

/** Opens (creating) `history.sqlite` in `stateDir`. */
export function openHistory(stateDir: string): HistoryStore {
  const file = path.join(stateDir, "dashboard-history.sqlite");
  let db: Database.Database;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o750 });
    db = new Database(file);
  } catch (err) {
    throw new OgygiaError(
      "ERR_OGYGIA_DASHBOARD_STATE",
      `cannot open the dashboard's history database ${file}: ${(err as Error).message}`,
      { hint: "Pass --state-dir with a folder this user can write.", cause: err },
    );
  }
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.exec(`
    CREATE TABLE IF NOT EXISTS history (
      id INTEGER PRIMARY KEY,
      host TEXT NOT NULL,
      at TEXT NOT NULL,
      current TEXT,
      booted TEXT,
      nextboot TEXT,
      online INTEGER,
      reboot_required INTEGER
    );
    CREATE INDEX IF NOT EXISTS history_host ON history (host, id);
  `);
  const insert = db.prepare<[string, string, ...unknown[]]>(
    "INSERT INTO history (host, at, current, booted, nextboot, online, reboot_required) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const select = db.prepare<[string, number], Row>(
    "SELECT * FROM (SELECT * FROM history WHERE host = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
  );
  const latest = db.prepare<[], Row>(
    "SELECT h.* FROM history h JOIN (SELECT max(id) AS id FROM history GROUP BY host) m ON h.id = m.id",
  );
  const last = new Map<string, Tracked>();
  for (const row of latest.all()) {
    last.set(row.host, {
      current: row.current,
      booted: row.booted,
      nextboot: row.nextboot,
      online: fromFlag(row.online),
      rebootRequired: fromFlag(row.reboot_required),
    });
  }
  const pruneOld = db.prepare<[string]>(
    "DELETE FROM history WHERE at < ? AND id NOT IN (SELECT max(id) FROM history GROUP BY host)",
  );
  const staleHosts = db.prepare<[string], { host: string }>(
    "SELECT host FROM history GROUP BY host HAVING max(at) < ?",
  );
  const forgetHost = db.prepare<[string]>("DELETE FROM history WHERE host = ?");
  const pruneMany = db.transaction((cutoff: string, present: ReadonlySet<string>) => {
    let removed = pruneOld.run(cutoff).changes;
    for (const { host } of staleHosts.all(cutoff)) {
      if (present.has(host)) continue;
      removed += forgetHost.run(host).changes;
      last.delete(host);
    }
    return removed;
  });
  const recordMany = db.transaction((changes: [string, Tracked][], at: string) => {
    for (const [host, t] of changes) {
      insert.run(
        host,
        at,
        t.current,
        t.booted,
        t.nextboot,
        toFlag(t.online),
        toFlag(t.rebootRequired),
      );
    }
  });

  return {
    file,
    record(hosts, at) {
      const changes: [string, Tracked][] = [];
      for (const host of hosts) {
        const now = tracked(host);
        const before = last.get(host.host);
        if (before !== undefined && sameTracked(before, now)) continue;
        changes.push([host.host, now]);
      }
      if (changes.length === 0) return 0;
      recordMany(changes, at.toISOString());
      for (const [host, t] of changes) last.set(host, t);
      return changes.length;
    },
    history(host) {
      return select.all(host, HISTORY_LIMIT).map((row) => ({
        at: row.at,
        current: row.current,
        booted: row.booted,
        nextboot: row.nextboot,
        online: fromFlag(row.online),
        rebootRequired: fromFlag(row.reboot_required),
      }));
    },
    prune(before, present) {
      return pruneMany(before.toISOString(), present);
    },
    close() {
      db.close();
    },
  };
}

/** `$XDG_STATE_HOME/ogygia`, else `/var/lib/ogygia` as root, else `~/.local/state/ogygia`. */
export function defaultStateDir(env: NodeJS.ProcessEnv, uid: number, home: string): string {
  const xdg = env.XDG_STATE_HOME?.trim();
  if (xdg !== undefined && xdg !== "" && path.isAbsolute(xdg)) return path.join(xdg, "ogygia");
  if (uid === 0) return "/var/lib/ogygia";
  return path.join(home, ".local/state/ogygia");
}
