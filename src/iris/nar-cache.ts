/**
 * The NAR cache: verified NARs fetched from peers, kept under `[cache] dir`
 * with the narinfo they were verified against, so the daemon can answer
 * both the narinfo and the NAR later without the peer.
 *
 * On disk, one flat folder:
 *   `<hash part>-<nix32 NAR hash>.nar`      the NAR, exactly NarSize bytes
 *   `<hash part>-<nix32 NAR hash>.narinfo`  our narinfo for it (URL ours)
 *   `.tmp-<random>`                          downloads in progress
 * A download is written to a temporary file in the same folder, fsynced and
 * renamed into place only after it verified; the narinfo is renamed before
 * the NAR, so a NAR under its final name always has its narinfo. A crash
 * leaves at worst temporary files or a lone narinfo, both removed at start.
 *
 * At start the folder is scanned: temporary files are removed, and so is
 * every entry whose narinfo does not parse, does not verify against today's
 * `[trust] trusted_keys`, or disagrees with the file names or the NAR's
 * size. Files with other names are left alone.
 *
 * Eviction: an entry not served for `timeToIdleMs` is removed (a sweep runs
 * every quarter of that, at most every minute); storing an entry first
 * removes the least recently served ones until it fits under `maxBytes`,
 * and an entry larger than `maxBytes` is not stored. An entry counts its
 * NAR and its narinfo, so `maxBytes` bounds the folder's content. Stores are serialised,
 * so the total never exceeds the limit once a store completes. Last use is
 * kept in memory and written to the NAR's mtime at most every ten minutes,
 * so idle times survive a restart.
 */

import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, readdir, rename, stat, unlink, utimes } from "node:fs/promises";
import path from "node:path";

import { OgygiaError, errorMessage, hasErrorCode } from "../core/index.js";
import type { TrustedKeys } from "../nix/index.js";
import { errorFields, type IrisLogger } from "./log.js";
import type { P2pMetrics } from "./p2p-metrics.js";
import { verifyPeerNarInfo } from "./peer-narinfo.js";

export interface CacheEntry {
  readonly hashPart: string;
  /** nix32 of the NAR's SHA-256. */
  readonly narHash: string;
  readonly size: number;
  readonly storePath: string;
  /** The narinfo served for it (our URL). */
  readonly narInfo: Buffer;
  /** Last served, ms since the epoch. */
  lastAccess: number;
  /** Last use written to the file's mtime. */
  persistedAccess: number;
}

export type CacheEvent =
  { type: "added"; hashPart: string } | { type: "removed"; hashPart: string };

export interface NarCacheOptions {
  dir: string;
  maxBytes: number;
  timeToIdleMs: number;
  trusted: TrustedKeys;
  storeDir: string;
  log: IrisLogger;
  metrics?: P2pMetrics | undefined;
  /** Wall clock in ms (tests). */
  now?: () => number;
}

export interface TempFile {
  readonly path: string;
}

export interface NarCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly entryCount: number;
  readonly totalBytes: number;
  /** The entry for a hash part, if cached. */
  get(hashPart: string): CacheEntry | undefined;
  /** Marks an entry as served now. */
  touch(entry: CacheEntry): void;
  /** The NAR file of an entry. */
  narPath(entry: CacheEntry): string;
  hashParts(): IterableIterator<string>;
  /** A new, empty temporary file in the cache folder. */
  createTemp(): Promise<TempFile>;
  /**
   * Stores a verified NAR (the temporary file, already fsynced and closed)
   * with its narinfo. Returns false when it does not fit (then the
   * temporary file is removed).
   */
  store(
    temp: TempFile,
    entry: Omit<CacheEntry, "lastAccess" | "persistedAccess">,
  ): Promise<boolean>;
  /** Removes a temporary file that will not be stored. */
  discard(temp: TempFile): Promise<void>;
  /** Forgets an entry whose file vanished. */
  drop(entry: CacheEntry): void;
  /** Removes entries idle for longer than the time to idle. */
  sweep(): Promise<void>;
  onChange(listener: (event: CacheEvent) => void): void;
  close(): void;
}

const ENTRY_NAME = /^([0-9a-df-np-sv-z]{32})-([0-9a-df-np-sv-z]{52})\.(nar|narinfo)$/;
const TEMP_PREFIX = ".tmp-";
const PERSIST_ACCESS_MS = 10 * 60_000;
/** narinfo files larger than this are not ours. */
const MAX_NARINFO_BYTES = 64 * 1024;

function cacheError(message: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD_CACHE", message, {
    cause,
    hint: "Check [cache] dir: it must be a folder ogygia-irisd can create and write.",
  });
}

/** What an entry costs on disk: its NAR and its narinfo. */
function footprint(entry: { size: number; narInfo: Buffer }): number {
  return entry.size + entry.narInfo.length;
}

/** Removes a file; false when it was not there. */
async function unlinkQuietly(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if (!hasErrorCode(err, "ENOENT")) throw err;
    return false;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

interface Recovered {
  entries: CacheEntry[];
  removed: string[];
}

/** Scans the folder: keeps consistent entries, removes temporary files and broken entries. */
async function recover(options: NarCacheOptions): Promise<Recovered> {
  const { dir, trusted, storeDir } = options;
  const names = await readdir(dir);
  const removed: string[] = [];
  const nars = new Map<string, string>();
  const narInfos = new Set<string>();
  for (const name of names) {
    if (name.startsWith(TEMP_PREFIX)) {
      if (await unlinkQuietly(path.join(dir, name))) removed.push(name);
      continue;
    }
    const match = ENTRY_NAME.exec(name);
    if (match === null) continue;
    const base = `${match[1] ?? ""}-${match[2] ?? ""}`;
    if (match[3] === "nar") nars.set(base, name);
    else narInfos.add(base);
  }
  const entries: CacheEntry[] = [];
  const remove = async (base: string): Promise<void> => {
    for (const suffix of [".nar", ".narinfo"]) {
      if (await unlinkQuietly(path.join(dir, base + suffix))) removed.push(base + suffix);
    }
  };
  for (const base of narInfos) {
    if (!nars.has(base)) await remove(base);
  }
  for (const base of nars.keys()) {
    const hashPart = base.slice(0, 32);
    const narHash = base.slice(33);
    const narFile = path.join(dir, `${base}.nar`);
    const infoFile = path.join(dir, `${base}.narinfo`);
    let ok = false;
    try {
      const [narStat, infoStat] = await Promise.all([stat(narFile), stat(infoFile)]);
      if (narStat.isFile() && infoStat.isFile() && infoStat.size <= MAX_NARINFO_BYTES) {
        const body = await readFile(infoFile);
        const verdict = verifyPeerNarInfo(body, { hashPart, trusted, storeDir, whence: infoFile });
        ok = verdict.ok && verdict.narHash === narHash && verdict.info.narSize === narStat.size;
        if (ok && verdict.ok) {
          const access = narStat.mtimeMs;
          entries.push({
            hashPart,
            narHash,
            size: narStat.size,
            storePath: verdict.info.storePath,
            narInfo: body,
            lastAccess: access,
            persistedAccess: access,
          });
        } else if (!verdict.ok) {
          options.log.warn({ file: infoFile, reason: verdict.message }, "NAR cache: entry removed");
        }
      }
    } catch (err) {
      if (!hasErrorCode(err, "ENOENT")) throw err;
    }
    if (!ok) await remove(base);
  }
  return { entries, removed };
}

/**
 * Opens (creating) the cache folder, recovers its index and enforces the
 * limits. Throws ERR_OGYGIA_IRISD_CACHE when the folder cannot be used.
 */
export async function openNarCache(options: NarCacheOptions): Promise<NarCache> {
  const { dir, maxBytes, timeToIdleMs, log, metrics } = options;
  const now = options.now ?? Date.now;
  let recovered: Recovered;
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    // Fails early when the folder is not writable.
    await unlinkQuietly(path.join(dir, `${TEMP_PREFIX}probe`));
    const probe = await open(path.join(dir, `${TEMP_PREFIX}probe`), "wx");
    await probe.close();
    await unlink(path.join(dir, `${TEMP_PREFIX}probe`));
    recovered = await recover(options);
  } catch (err) {
    throw cacheError(`cannot use the NAR cache folder ${dir}: ${errorMessage(err)}`, err);
  }

  const entries = new Map<string, CacheEntry>();
  let totalBytes = 0;
  const listeners: ((event: CacheEvent) => void)[] = [];
  const emit = (event: CacheEvent): void => {
    for (const listener of listeners) listener(event);
  };
  const publish = (): void => metrics?.cacheSize(entries.size, totalBytes);
  for (const entry of recovered.entries) {
    entries.set(entry.hashPart, entry);
    totalBytes += footprint(entry);
  }
  const fileOf = (entry: { hashPart: string; narHash: string }, suffix: string): string =>
    path.join(dir, `${entry.hashPart}-${entry.narHash}${suffix}`);

  /** Removes an entry from the index at once, and its files. */
  const evict = async (
    entry: CacheEntry,
    reason: "idle" | "size" | "replaced" | "gone",
  ): Promise<void> => {
    if (entries.get(entry.hashPart) === entry) {
      entries.delete(entry.hashPart);
      totalBytes -= footprint(entry);
      metrics?.cacheEviction(reason);
      publish();
      emit({ type: "removed", hashPart: entry.hashPart });
    }
    // A NAR being served stays readable through its open descriptor.
    await unlinkQuietly(fileOf(entry, ".nar"));
    await unlinkQuietly(fileOf(entry, ".narinfo"));
  };

  /** Least recently used first. */
  const byAge = (): CacheEntry[] =>
    [...entries.values()].sort((a, b) => a.lastAccess - b.lastAccess);

  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task, task);
    queue = run.catch(() => undefined);
    return run;
  };

  const sweep = (): Promise<void> =>
    exclusive(async () => {
      const cutoff = now() - timeToIdleMs;
      for (const entry of byAge()) {
        if (entry.lastAccess >= cutoff) break;
        await evict(entry, "idle");
      }
    });

  // The limits may have shrunk since the entries were stored.
  await sweep();
  await exclusive(async () => {
    for (const entry of byAge()) {
      if (totalBytes <= maxBytes) break;
      await evict(entry, "size");
    }
  });
  publish();
  log.info(
    {
      dir,
      entries: entries.size,
      bytes: totalBytes,
      maxBytes,
      removed: recovered.removed.length,
    },
    "NAR cache ready",
  );

  const sweepEvery = Math.max(1000, Math.min(60_000, Math.floor(timeToIdleMs / 4)));
  const sweeper = setInterval(() => {
    sweep().catch((err: unknown) => {
      log.error(errorFields(err), "NAR cache: sweep failed");
    });
  }, sweepEvery);
  sweeper.unref();

  return {
    dir,
    maxBytes,
    get entryCount() {
      return entries.size;
    },
    get totalBytes() {
      return totalBytes;
    },
    get: (hashPart) => entries.get(hashPart),
    touch(entry) {
      const t = now();
      entry.lastAccess = t;
      if (t - entry.persistedAccess < PERSIST_ACCESS_MS) return;
      entry.persistedAccess = t;
      const seconds = t / 1000;
      utimes(fileOf(entry, ".nar"), seconds, seconds).catch((err: unknown) => {
        log.debug({ ...errorFields(err), file: fileOf(entry, ".nar") }, "NAR cache: utimes");
      });
    },
    narPath: (entry) => fileOf(entry, ".nar"),
    hashParts: () => entries.keys(),
    async createTemp() {
      const file = path.join(dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
      const handle = await open(file, "wx", 0o644);
      await handle.close();
      return { path: file };
    },
    store(temp, fields) {
      return exclusive(async () => {
        const needed = footprint(fields);
        if (needed > maxBytes) {
          await unlinkQuietly(temp.path);
          return false;
        }
        const old = entries.get(fields.hashPart);
        if (old !== undefined) await evict(old, "replaced");
        for (const entry of byAge()) {
          if (totalBytes + needed <= maxBytes) break;
          await evict(entry, "size");
        }
        const infoTemp = path.join(dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
        try {
          const handle = await open(infoTemp, "wx", 0o644);
          try {
            await handle.writeFile(fields.narInfo);
            await handle.sync();
          } finally {
            await handle.close();
          }
          await rename(infoTemp, fileOf(fields, ".narinfo"));
          await rename(temp.path, fileOf(fields, ".nar"));
          await syncDir(dir);
        } catch (err) {
          await unlinkQuietly(infoTemp);
          await unlinkQuietly(temp.path);
          await unlinkQuietly(fileOf(fields, ".narinfo"));
          await unlinkQuietly(fileOf(fields, ".nar"));
          throw cacheError(`cannot store ${fields.storePath} in ${dir}: ${errorMessage(err)}`, err);
        }
        const t = now();
        const entry: CacheEntry = { ...fields, lastAccess: t, persistedAccess: t };
        entries.set(entry.hashPart, entry);
        totalBytes += needed;
        metrics?.cacheStored(entry.size);
        publish();
        emit({ type: "added", hashPart: entry.hashPart });
        return true;
      });
    },
    async discard(temp) {
      await unlinkQuietly(temp.path);
    },
    drop(entry) {
      void evict(entry, "gone").catch((err: unknown) => {
        log.error(errorFields(err), "NAR cache: cannot remove an entry");
      });
    },
    sweep,
    onChange(listener) {
      listeners.push(listener);
    },
    close() {
      clearInterval(sweeper);
    },
  };
}
