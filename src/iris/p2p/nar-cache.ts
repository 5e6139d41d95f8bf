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
import { errorFields, type Logger } from "../../log/index.js";
import type { P2pMetrics } from "./metrics.js";
import { createByteLru } from "../store/index.js";
import { verifyPeerNarInfo } from "./peer-narinfo.js";
import { hashFileRange } from "./scrub.js";

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
  /** false: recovered at start and not hashed since (see `scrub.ts`). */
  verified?: boolean;
}

export type CacheEvent =
  { type: "added"; hashPart: string } | { type: "removed"; hashPart: string };

export interface NarCacheOptions {
  dir: string;
  maxBytes: number;
  timeToIdleMs: number;
  trusted: TrustedKeys;
  storeDir: string;
  log: Logger;
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
  /**
   * Hashes an entry not verified since start (every entry with `force`);
   * a bad one is removed. Resolves with whether the entry is good.
   */
  verify(entry: CacheEntry, options?: { force?: boolean }): Promise<boolean>;
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
          verified: false,
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
  const { dir } = options;
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
  const cache = new DiskCache(options, recovered.entries);
  await cache.enforceLimits();
  options.log.info(
    {
      dir,
      entries: cache.entryCount,
      bytes: cache.totalBytes,
      maxBytes: options.maxBytes,
      removed: recovered.removed.length,
    },
    "NAR cache ready",
  );
  cache.startSweeper();
  return cache;
}

type StoreFields = Omit<CacheEntry, "offset" | "lastAccess" | "persistedAccess">;

function keyOf(entry: { hashPart: string; narHash: string }): string {
  return `${entry.hashPart}-${entry.narHash}`;
}

/**
 * The cache's index in memory (entries by hash part, their total size),
 * the small NARs held in memory, and the sweeper, until `close`. Changes
 * of the index run one at a time (`exclusive`), fsyncs one at a time
 * (`durable`).
 */
class DiskCache implements NarCache {
  readonly dir: string;
  readonly maxBytes: number;
  private bytes = 0;
  private readonly entries = new Map<string, CacheEntry>();
  private readonly listeners: ((event: CacheEvent) => void)[] = [];
  // Keyed by file name: an entry replaced or evicted is never looked up again by it.
  private readonly smallNars = createByteLru(NAR_MEMORY_BYTES);
  private readonly now: () => number;
  private syncing: Promise<unknown> = Promise.resolve();
  private queue: Promise<unknown> = Promise.resolve();
  private sweeper: NodeJS.Timeout | undefined;
  private readonly verifying = new Map<CacheEntry, Promise<boolean>>();
  private corruptLogged = false;

  constructor(
    private readonly options: NarCacheOptions,
    recovered: readonly CacheEntry[],
  ) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes;
    this.now = options.now ?? Date.now;
    for (const entry of recovered) {
      this.entries.set(entry.hashPart, entry);
      this.bytes += footprint(entry);
    }
  }

  get entryCount(): number {
    return this.entries.size;
  }

  get totalBytes(): number {
    return this.bytes;
  }

  /** The limits may have shrunk since the entries were stored. */
  async enforceLimits(): Promise<void> {
    await this.sweep();
    await this.exclusive(async () => {
      for (const entry of this.byAge()) {
        if (this.totalBytes <= this.maxBytes) break;
        await this.evict(entry, "size");
      }
    });
    this.publish();
  }

  startSweeper(): void {
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.options.timeToIdleMs / 4)));
    this.sweeper = setInterval(() => {
      this.sweep().catch((err: unknown) => {
        this.options.log.error(errorFields(err), "NAR cache: sweep failed");
      });
    }, every);
    this.sweeper.unref();
  }

  get(hashPart: string): CacheEntry | undefined {
    return this.entries.get(hashPart);
  }

  touch(entry: CacheEntry): void {
    const t = this.now();
    entry.lastAccess = t;
    if (t - entry.persistedAccess < PERSIST_ACCESS_MS) return;
    entry.persistedAccess = t;
    const seconds = t / 1000;
    const file = this.fileOf(entry);
    utimes(file, seconds, seconds).catch((err: unknown) => {
      this.options.log.debug({ ...errorFields(err), file }, "NAR cache: utimes");
    });
  }

  entryPath(entry: CacheEntry): string {
    return this.fileOf(entry);
  }

  narBytes(entry: CacheEntry): Buffer | undefined {
    return entry.size <= SMALL_NAR_BYTES ? this.smallNars.get(keyOf(entry)) : undefined;
  }

  keepNarBytes(entry: CacheEntry, nar: Buffer): void {
    if (entry.size <= SMALL_NAR_BYTES && nar.length === entry.size) {
      this.smallNars.set(keyOf(entry), nar);
    }
  }

  hashParts(): IterableIterator<string> {
    return this.entries.keys();
  }

  async createTemp(narInfo: Buffer): Promise<TempEntry & { handle: FileHandle }> {
    const file = this.tempFile();
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
  }

  async finishTemp(temp: TempEntry): Promise<void> {
    const handle = temp.handle;
    if (handle === undefined) return;
    try {
      await this.durable(() => handle.sync());
    } finally {
      await handle.close();
    }
  }

  async writeTemp(narInfo: Buffer, chunks: readonly Buffer[]): Promise<TempEntry> {
    const file = this.tempFile();
    const fd = await openFd(file, "wx", 0o644);
    const header = entryHeader(narInfo);
    try {
      await writevAll(fd, [header, ...chunks], 0);
      await this.durable(() => fsyncFd(fd));
    } catch (err) {
      await closeFd(fd);
      await unlinkQuietly(file);
      throw err;
    }
    await closeFd(fd);
    return { path: file, offset: header.length };
  }

  store(temp: TempEntry, fields: StoreFields, nar?: Buffer): Promise<boolean> {
    return this.exclusive(async () => {
      const needed = footprint(fields);
      if (needed > this.maxBytes) {
        await unlinkQuietly(temp.path);
        return false;
      }
      await this.makeRoom(fields.hashPart, needed);
      try {
        await rename(temp.path, this.fileOf(fields));
      } catch (err) {
        await unlinkQuietly(temp.path);
        const message = `cannot store ${fields.storePath} in ${this.dir}: ${errorMessage(err)}`;
        throw cacheError(message, err);
      }
      const t = this.now();
      const entry: CacheEntry = {
        ...fields,
        offset: temp.offset,
        lastAccess: t,
        persistedAccess: t,
      };
      this.entries.set(entry.hashPart, entry);
      this.bytes += needed;
      if (nar !== undefined) this.keepNarBytes(entry, nar);
      this.options.metrics?.cacheStored(entry.size);
      this.publish();
      this.emit({ type: "added", hashPart: entry.hashPart });
      return true;
    });
  }

  async discard(temp: TempEntry): Promise<void> {
    await unlinkQuietly(temp.path);
  }

  drop(entry: CacheEntry): void {
    void this.evict(entry, "gone").catch((err: unknown) => {
      this.options.log.error(errorFields(err), "NAR cache: cannot remove an entry");
    });
  }

  sweep(): Promise<void> {
    return this.exclusive(async () => {
      const cutoff = this.now() - this.options.timeToIdleMs;
      for (const entry of this.byAge()) {
        if (entry.lastAccess >= cutoff) break;
        await this.evict(entry, "idle");
      }
    });
  }

  verify(entry: CacheEntry, options: { force?: boolean } = {}): Promise<boolean> {
    if (entry.verified !== false && options.force !== true) return Promise.resolve(true);
    let run = this.verifying.get(entry);
    if (run === undefined) {
      run = this.hashEntry(entry).finally(() => this.verifying.delete(entry));
      this.verifying.set(entry, run);
    }
    return run;
  }

  private async hashEntry(entry: CacheEntry): Promise<boolean> {
    const file = this.fileOf(entry);
    let actual: string | undefined;
    try {
      actual = await hashFileRange(file, entry.offset, entry.size);
    } catch (err) {
      if (!hasErrorCode(err, "ENOENT")) throw err;
    }
    if (actual === entry.narHash) {
      entry.verified = true;
      return true;
    }
    const fields = { file, storePath: entry.storePath, expected: entry.narHash, actual };
    // Logged once at warn (then at debug): a failing disk would otherwise flood the log.
    if (this.corruptLogged) this.options.log.debug(fields, "NAR cache: entry failed verification");
    else
      this.options.log.warn(fields, "NAR cache: entry failed verification: removed, never served");
    this.corruptLogged = true;
    await this.exclusive(() => this.evict(entry, "corrupt"));
    return false;
  }

  onChange(listener: (event: CacheEvent) => void): void {
    this.listeners.push(listener);
  }

  close(): void {
    clearInterval(this.sweeper);
    this.smallNars.clear();
  }

  /** Evicts the entry this one replaces, then the least recently used until `needed` fits. */
  private async makeRoom(hashPart: string, needed: number): Promise<void> {
    const old = this.entries.get(hashPart);
    if (old !== undefined) await this.evict(old, "replaced");
    for (const entry of this.byAge()) {
      if (this.totalBytes + needed <= this.maxBytes) break;
      await this.evict(entry, "size");
    }
  }

  /** Removes an entry from the index at once, and its file. */
  private async evict(
    entry: CacheEntry,
    reason: "idle" | "size" | "replaced" | "gone" | "corrupt",
  ): Promise<void> {
    if (this.entries.get(entry.hashPart) === entry) {
      this.entries.delete(entry.hashPart);
      this.bytes -= footprint(entry);
      this.options.metrics?.cacheEviction(reason);
      this.publish();
      this.emit({ type: "removed", hashPart: entry.hashPart });
    }
    // A NAR being served stays readable through its open descriptor.
    await unlinkQuietly(this.fileOf(entry));
  }

  private emit(event: CacheEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private publish(): void {
    this.options.metrics?.cacheSize(this.entries.size, this.totalBytes);
  }

  private fileOf(entry: { hashPart: string; narHash: string }): string {
    return path.join(this.dir, `${keyOf(entry)}.entry`);
  }

  private tempFile(): string {
    return path.join(this.dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
  }

  /** Least recently used first. */
  private byAge(): CacheEntry[] {
    return [...this.entries.values()].sort((a, b) => a.lastAccess - b.lastAccess);
  }

  // fsync blocks a libuv pool thread for as long as the disk takes: one at a
  // time, so the other pool threads keep serving downloads and cached NARs.
  private durable(sync: () => Promise<void>): Promise<void> {
    const run = this.syncing.then(sync);
    this.syncing = run.catch(() => undefined);
    return run;
  }

  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/** Bytes before the narinfo in an entry file. */
export const ENTRY_HEADER_BYTES = HEADER_BYTES;
