/**
 * The NAR cache: verified NARs fetched from peers, each kept with the
 * narinfo it was verified against, so the daemon can answer both the
 * narinfo and the NAR later without the peer.
 *
 * On disk, one flat folder of single-file entries:
 *   `<hash part>-<nix32 NAR hash>.entry`   an entry (layout below)
 *   `.tmp-<random>`                         a download in progress
 * An entry is the 8 bytes `IRISNC1\n`, the narinfo's length (u32, little
 * endian), the narinfo (our URL), then the NAR, exactly NarSize bytes. One
 * file per entry means one rename makes it appear whole: a download is
 * written to a temporary file in the same folder, verified, fsynced, and
 * only then renamed into place. A crash leaves at worst temporary files,
 * removed at start.
 *
 * At start the folder is scanned: temporary files are removed, and so is
 * every entry whose header or narinfo does not parse, does not verify
 * against today's `[trust] trusted_keys`, or disagrees with the file's name
 * or size. Files with other names are left alone. NARs are not hashed again
 * (they were before the rename, and clients check every NAR against its
 * signed hash anyway).
 *
 * Small entries (up to `SMALL_NAR_BYTES`) are also held in memory, within
 * `NAR_MEMORY_BYTES`, least recently used out first: a NAR downloaded into
 * memory is kept as it is stored, one read from disk is kept once read.
 *
 * Eviction: an entry not served for `timeToIdleMs` is removed (a sweep runs
 * every quarter of that, at most every minute); storing an entry first
 * removes the least recently served ones until it fits under `maxBytes`
 * (whole files: header and narinfo count), and an entry larger than
 * `maxBytes` is not stored. Stores are serialised, so the total never
 * exceeds the limit once a store completes. Last use is kept in memory and
 * written to the file's mtime at most every ten minutes, so idle times
 * survive a restart.
 */

import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { mkdir, open, readdir, rename, unlink, utimes, type FileHandle } from "node:fs/promises";
import { promisify } from "node:util";
import path from "node:path";

import { OgygiaError, errorMessage, hasErrorCode } from "../../core/index.js";
import type { TrustedKeys } from "../../nix/index.js";
import { errorFields, type IrisLogger } from "../log/index.js";
import type { P2pMetrics } from "./metrics.js";
import { createByteLru } from "../store/index.js";
import { verifyPeerNarInfo } from "./peer-narinfo.js";

export interface CacheEntry {
  readonly hashPart: string;
  /** nix32 of the NAR's SHA-256. */
  readonly narHash: string;
  /** The NAR's size. */
  readonly size: number;
  readonly storePath: string;
  /** The narinfo served for it (our URL). */
  readonly narInfo: Buffer;
  /** Where the NAR starts in the entry file (header and narinfo before it). */
  readonly offset: number;
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

/** A new entry being written: its header is in place, the NAR goes from `offset` on. */
export interface TempEntry {
  readonly path: string;
  /** Open for writing (from `createTemp`); `finishTemp` fsyncs and closes it. */
  readonly handle?: FileHandle | undefined;
  readonly offset: number;
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
  /** The file of an entry (the NAR starts at `entry.offset`). */
  entryPath(entry: CacheEntry): string;
  /** A small entry's NAR, when it is held in memory too (see `SMALL_NAR_BYTES`). */
  narBytes(entry: CacheEntry): Buffer | undefined;
  /** Holds a small entry's NAR in memory (read from its file, or given at `store`). */
  keepNarBytes(entry: CacheEntry, nar: Buffer): void;
  hashParts(): IterableIterator<string>;
  /** A new temporary entry file holding the header for `narInfo`, open to write the NAR. */
  createTemp(narInfo: Buffer): Promise<TempEntry & { handle: FileHandle }>;
  /** fsyncs (one file at a time) and closes a temporary entry from `createTemp`. */
  finishTemp(temp: TempEntry): Promise<void>;
  /** Writes a whole temporary entry (header, then the NAR's `chunks`), fsynced. */
  writeTemp(narInfo: Buffer, chunks: readonly Buffer[]): Promise<TempEntry>;
  /**
   * Stores a verified entry (a temporary file, complete, fsynced and
   * closed). Returns false when it does not fit (the file is then removed).
   */
  store(
    temp: TempEntry,
    entry: Omit<CacheEntry, "offset" | "lastAccess" | "persistedAccess">,
    /** The NAR's bytes, already in memory: kept there too when small. */
    nar?: Buffer,
  ): Promise<boolean>;
  /** Removes a temporary file that will not be stored. */
  discard(temp: TempEntry): Promise<void>;
  /** Forgets an entry whose file vanished or is damaged. */
  drop(entry: CacheEntry): void;
  /** Removes entries idle for longer than the time to idle. */
  sweep(): Promise<void>;
  onChange(listener: (event: CacheEvent) => void): void;
  close(): void;
}

/**
 * Entries up to this size are also held in memory (most recently used
 * first, `NAR_MEMORY_BYTES` in all), so serving the many small NARs of a
 * closure costs no disk read: a file read is several round trips to the
 * libuv pool, which on a busy host cost more than sending the bytes.
 */
export const SMALL_NAR_BYTES = 1024 * 1024;
/** Bytes of small entries' NARs held in memory. */
export const NAR_MEMORY_BYTES = 32 * 1024 * 1024;

const ENTRY_NAME = /^([0-9a-df-np-sv-z]{32})-([0-9a-df-np-sv-z]{52})\.entry$/;
const MAGIC = Buffer.from("IRISNC1\n", "latin1");
const HEADER_BYTES = MAGIC.length + 4;
const TEMP_PREFIX = ".tmp-";
const PERSIST_ACCESS_MS = 10 * 60_000;
/** A narinfo longer than this is not ours. */
const MAX_NARINFO_BYTES = 64 * 1024;

// The callback API on plain descriptors: lighter than FileHandle for the
// few calls a whole-entry write makes.
const openFd = promisify(fs.open);
const writevFd = promisify(fs.writev);
const fsyncFd = promisify(fs.fsync);
const closeFd = promisify(fs.close);

/** Writes all of `buffers` at `position` (a short write is retried). */
async function writevAll(fd: number, buffers: readonly Buffer[], position: number): Promise<void> {
  let pending = [...buffers];
  let at = position;
  while (pending.length > 0) {
    // IOV_MAX is 1024 on Linux: write in slices of at most that many buffers.
    const slice = pending.slice(0, 1024);
    let written = (await writevFd(fd, slice, at)).bytesWritten;
    at += written;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (written >= buffer.length) written -= buffer.length;
      else {
        rest.push(written > 0 ? buffer.subarray(written) : buffer);
        written = 0;
      }
    }
    pending = rest;
  }
}

/** The bytes an entry file starts with: magic, narinfo length, narinfo. */
export function entryHeader(narInfo: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(narInfo.length, MAGIC.length);
  return Buffer.concat([header, narInfo]);
}

function cacheError(message: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD_CACHE", message, {
    cause,
    hint: "Check [cache] dir: it must be a folder ogygia-irisd can create and write.",
  });
}

/** What an entry costs on disk: its whole file. */
function footprint(entry: { size: number; narInfo: Buffer }): number {
  return HEADER_BYTES + entry.narInfo.length + entry.size;
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

/** Reads an entry file's header and narinfo; undefined when it is not one. */
async function readHeader(
  file: string,
): Promise<{ narInfo: Buffer; size: number; mtimeMs: number } | undefined> {
  const handle = await open(file, "r");
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size < HEADER_BYTES) return undefined;
    const head = Buffer.alloc(Math.min(info.size, HEADER_BYTES + MAX_NARINFO_BYTES));
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    if (bytesRead < HEADER_BYTES || !head.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    const length = head.readUInt32LE(MAGIC.length);
    if (length > MAX_NARINFO_BYTES || HEADER_BYTES + length > bytesRead) return undefined;
    return {
      narInfo: Buffer.from(head.subarray(HEADER_BYTES, HEADER_BYTES + length)),
      size: info.size,
      mtimeMs: info.mtimeMs,
    };
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
  const removed: string[] = [];
  const entries: CacheEntry[] = [];
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    if (name.startsWith(TEMP_PREFIX)) {
      if (await unlinkQuietly(file)) removed.push(name);
      continue;
    }
    const match = ENTRY_NAME.exec(name);
    if (match === null) continue;
    const hashPart = match[1] ?? "";
    const narHash = match[2] ?? "";
    let header;
    try {
      header = await readHeader(file);
    } catch (err) {
      if (!hasErrorCode(err, "ENOENT", "EISDIR")) throw err;
    }
    let problem = "not an entry (bad header)";
    if (header !== undefined) {
      const verdict = verifyPeerNarInfo(header.narInfo, {
        hashPart,
        trusted,
        storeDir,
        whence: file,
      });
      if (!verdict.ok) problem = verdict.message;
      else if (verdict.narHash !== narHash) problem = "its narinfo names another NAR hash";
      else if (header.size !== HEADER_BYTES + header.narInfo.length + verdict.info.narSize) {
        problem = `${header.size} bytes, not the ${HEADER_BYTES + header.narInfo.length + verdict.info.narSize} its narinfo implies`;
      } else {
        entries.push({
          hashPart,
          narHash,
          size: verdict.info.narSize,
          storePath: verdict.info.storePath,
          narInfo: header.narInfo,
          offset: HEADER_BYTES + header.narInfo.length,
          lastAccess: header.mtimeMs,
          persistedAccess: header.mtimeMs,
        });
        continue;
      }
    }
    options.log.warn({ file, reason: problem }, "NAR cache: entry removed");
    if (await unlinkQuietly(file)) removed.push(name);
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
    const probe = path.join(dir, `${TEMP_PREFIX}probe-${randomBytes(6).toString("hex")}`);
    await (await open(probe, "wx")).close();
    await unlink(probe);
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
  const fileOf = (entry: { hashPart: string; narHash: string }): string =>
    path.join(dir, `${entry.hashPart}-${entry.narHash}.entry`);
  // Keyed by file name: an entry replaced or evicted is never looked up again by it.
  const smallNars = createByteLru(NAR_MEMORY_BYTES);
  const keyOf = (entry: { hashPart: string; narHash: string }): string =>
    `${entry.hashPart}-${entry.narHash}`;
  const holdSmall = (entry: CacheEntry, nar: Buffer): void => {
    if (entry.size <= SMALL_NAR_BYTES && nar.length === entry.size)
      smallNars.set(keyOf(entry), nar);
  };

  /** Removes an entry from the index at once, and its file. */
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
    await unlinkQuietly(fileOf(entry));
  };

  /** Least recently used first. */
  const byAge = (): CacheEntry[] =>
    [...entries.values()].sort((a, b) => a.lastAccess - b.lastAccess);

  // fsync blocks a libuv pool thread for as long as the disk takes: one at a
  // time, so the other pool threads keep serving downloads and cached NARs.
  let syncing: Promise<unknown> = Promise.resolve();
  const durable = (sync: () => Promise<void>): Promise<void> => {
    const run = syncing.then(sync);
    syncing = run.catch(() => undefined);
    return run;
  };

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
    { dir, entries: entries.size, bytes: totalBytes, maxBytes, removed: recovered.removed.length },
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
      utimes(fileOf(entry), seconds, seconds).catch((err: unknown) => {
        log.debug({ ...errorFields(err), file: fileOf(entry) }, "NAR cache: utimes");
      });
    },
    entryPath: (entry) => fileOf(entry),
    narBytes: (entry) => (entry.size <= SMALL_NAR_BYTES ? smallNars.get(keyOf(entry)) : undefined),
    keepNarBytes: holdSmall,
    hashParts: () => entries.keys(),
    async createTemp(narInfo) {
      const file = path.join(dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
      const handle = await open(file, "wx", 0o644);
      const header = entryHeader(narInfo);
      try {
        await handle.write(header, 0, header.length, 0);
      } catch (err) {
        await handle.close();
        await unlinkQuietly(file);
        throw err;
      }
      return { path: file, handle, offset: header.length };
    },
    async finishTemp(temp) {
      const handle = temp.handle;
      if (handle === undefined) return;
      try {
        await durable(() => handle.sync());
      } finally {
        await handle.close();
      }
    },
    async writeTemp(narInfo, chunks) {
      const file = path.join(dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
      const fd = await openFd(file, "wx", 0o644);
      const header = entryHeader(narInfo);
      try {
        await writevAll(fd, [header, ...chunks], 0);
        await durable(() => fsyncFd(fd));
      } catch (err) {
        await closeFd(fd);
        await unlinkQuietly(file);
        throw err;
      }
      await closeFd(fd);
      return { path: file, offset: header.length };
    },
    store(temp, fields, nar) {
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
        try {
          await rename(temp.path, fileOf(fields));
        } catch (err) {
          await unlinkQuietly(temp.path);
          throw cacheError(`cannot store ${fields.storePath} in ${dir}: ${errorMessage(err)}`, err);
        }
        const t = now();
        const entry: CacheEntry = {
          ...fields,
          offset: temp.offset,
          lastAccess: t,
          persistedAccess: t,
        };
        entries.set(entry.hashPart, entry);
        totalBytes += needed;
        if (nar !== undefined) holdSmall(entry, nar);
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
      smallNars.clear();
    },
  };
}

/** Bytes before the narinfo in an entry file. */
export const ENTRY_HEADER_BYTES = HEADER_BYTES;
