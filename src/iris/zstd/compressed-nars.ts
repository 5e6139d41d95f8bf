/**
 * zstd-compressed NARs on disk, so a narinfo can state the `FileHash` and
 * `FileSize` of the bytes its `URL` serves: Nix reads those before it asks
 * for the NAR, so the NAR is compressed when its narinfo is first asked
 * for (a GET; HEAD answers without compressing) and the file is kept.
 *
 * On disk, one flat folder (`<[cache] dir>/zstd`):
 *   `<nix32 NAR hash>-<nix32 SHA-256 of the file>.nar.zst`   a compressed NAR
 *   `.tmp-<random>`                                          being written
 * Keyed by NAR hash: the same content served under another path, from the
 * store or from the NAR cache of peers' NARs, is compressed once. A file is
 * written to a temporary name, fsynced and renamed, so a crash leaves at
 * worst temporary files (removed at start). Files found at start are not
 * hashed again: Nix checks the NAR hash of what it decompresses.
 *
 * Bounded like the NAR cache, by `[cache] max_size_bytes` and
 * `time_to_idle_secs` (its own budget: the two folders together may hold
 * twice the limit). A NAR whose compressed file would not fit is served
 * uncompressed. Compression runs on the event loop, 1 MiB at a time.
 */

import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, stat, unlink, utimes } from "node:fs/promises";
import path from "node:path";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

import { OgygiaError, errorMessage, hasErrorCode } from "../../core/index.js";
import { formatHash, hashFromDigest, parseHash, type Hash } from "../../nix/index.js";
import { errorFields, type Logger } from "../../log/index.js";
import type { ByteRange, ServedNar } from "../http/index.js";
import { zstdCompressStream } from "./zstd.js";

/** A NAR's compressed file. */
export interface CompressedNar {
  /** nix32 of the NAR's SHA-256. */
  readonly narHash: string;
  /** SHA-256 of the compressed file. */
  readonly fileHash: Hash;
  readonly fileSize: number;
  lastAccess: number;
}

export interface CompressedNarsOptions {
  dir: string;
  maxBytes: number;
  timeToIdleMs: number;
  log: Logger;
  /** Wall clock in ms (tests). */
  now?: () => number;
}

export interface CompressedNars {
  readonly dir: string;
  readonly totalBytes: number;
  readonly count: number;
  /** The stored file of a NAR, if any (marks it used). */
  get(narHash: string): CompressedNar | undefined;
  /**
   * The compressed file of `nar`, compressing it first when it is not
   * stored (concurrent callers share one compression). Undefined when it
   * does not fit the limit: serve the NAR uncompressed.
   */
  compress(nar: ServedNar): Promise<CompressedNar | undefined>;
  /** Sends the file (or `range` of it) into `out` and ends it. */
  send(entry: CompressedNar, out: Writable, range: ByteRange | undefined): Promise<void>;
  /** Removes files idle for longer than the time to idle. */
  sweep(): Promise<void>;
  close(): void;
}

const NAME = /^([0-9a-df-np-sv-z]{52})-([0-9a-df-np-sv-z]{52})\.nar\.zst$/;
const TEMP_PREFIX = ".tmp-";
const PERSIST_ACCESS_MS = 10 * 60_000;

function fileName(entry: { narHash: string; fileHash: Hash }): string {
  return `${entry.narHash}-${formatHash(entry.fileHash, "nix32", false)}.nar.zst`;
}

async function unlinkQuietly(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (!hasErrorCode(err, "ENOENT")) throw err;
  }
}

/** Opens (creating) the folder and indexes the files in it; removes temporary files. */
export async function openCompressedNars(options: CompressedNarsOptions): Promise<CompressedNars> {
  const { dir } = options;
  const entries: CompressedNar[] = [];
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    for (const name of await readdir(dir)) {
      const file = path.join(dir, name);
      if (name.startsWith(TEMP_PREFIX)) {
        await unlinkQuietly(file);
        continue;
      }
      const match = NAME.exec(name);
      if (match === null) continue;
      const info = await stat(file);
      if (!info.isFile()) continue;
      entries.push({
        narHash: match[1] ?? "",
        fileHash: parseHash(`sha256:${match[2] ?? ""}`),
        fileSize: info.size,
        lastAccess: info.mtimeMs,
      });
    }
  } catch (err) {
    throw new OgygiaError(
      "ERR_OGYGIA_IRISD_CACHE",
      `cannot use the folder of compressed NARs ${dir}: ${errorMessage(err)}`,
      {
        cause: err,
        hint: "Check [cache] dir: it must be a folder ogygia-irisd can create and write.",
      },
    );
  }
  const store = new Store(options, entries);
  await store.sweep();
  await store.fit(0);
  store.startSweeper();
  return store;
}

class Store implements CompressedNars {
  readonly dir: string;
  private readonly entries = new Map<string, CompressedNar>();
  private readonly persisted = new WeakMap<CompressedNar, number>();
  private readonly inFlight = new Map<string, Promise<CompressedNar | undefined>>();
  private bytes = 0;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(
    private readonly options: CompressedNarsOptions,
    recovered: readonly CompressedNar[],
  ) {
    this.dir = options.dir;
    this.now = options.now ?? Date.now;
    for (const entry of recovered) this.add(entry);
  }

  get totalBytes(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.size;
  }

  get(narHash: string): CompressedNar | undefined {
    const entry = this.entries.get(narHash);
    if (entry !== undefined) this.touch(entry);
    return entry;
  }

  compress(nar: ServedNar): Promise<CompressedNar | undefined> {
    const known = this.get(nar.narHash);
    if (known !== undefined) return Promise.resolve(known);
    // A NAR that does not fit uncompressed may still fit compressed: only a
    // limit of 0 skips the work.
    if (this.options.maxBytes === 0) return Promise.resolve(undefined);
    let run = this.inFlight.get(nar.narHash);
    if (run === undefined) {
      run = this.write(nar).finally(() => this.inFlight.delete(nar.narHash));
      this.inFlight.set(nar.narHash, run);
    }
    return run;
  }

  async send(entry: CompressedNar, out: Writable, range: ByteRange | undefined): Promise<void> {
    let handle;
    try {
      handle = await open(this.fileOf(entry), "r");
    } catch (err) {
      if (!hasErrorCode(err, "ENOENT")) throw err;
      this.forget(entry);
      throw new OgygiaError("ERR_OGYGIA_IRISD", `the compressed NAR ${entry.narHash} vanished`);
    }
    try {
      const start = range?.start ?? 0;
      const length = range?.length ?? entry.fileSize;
      const stream = handle.createReadStream({
        start,
        end: start + length - 1,
        highWaterMark: 1024 * 1024,
        autoClose: false,
      });
      await pipeline(stream, out);
    } finally {
      await handle.close();
    }
  }

  async sweep(): Promise<void> {
    const cutoff = this.now() - this.options.timeToIdleMs;
    for (const entry of this.byAge()) {
      if (entry.lastAccess >= cutoff) break;
      await this.evict(entry);
    }
  }

  /** Evicts the least recently used until `needed` more bytes fit. */
  async fit(needed: number): Promise<void> {
    for (const entry of this.byAge()) {
      if (this.bytes + needed <= this.options.maxBytes) break;
      await this.evict(entry);
    }
  }

  startSweeper(): void {
    const every = Math.max(1000, Math.min(60_000, Math.floor(this.options.timeToIdleMs / 4)));
    this.sweeper = setInterval(() => {
      this.sweep().catch((err: unknown) => {
        this.options.log.error(errorFields(err), "compressed NARs: sweep failed");
      });
    }, every);
    this.sweeper.unref();
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /** Compresses `nar` into a temporary file, hashing it, and renames it into place. */
  private async write(nar: ServedNar): Promise<CompressedNar | undefined> {
    await nar.ready?.();
    const temp = path.join(this.dir, `${TEMP_PREFIX}${randomBytes(12).toString("hex")}`);
    const handle = await open(temp, "wx", 0o644);
    const hasher = createHash("sha256");
    let size = 0;
    try {
      const compressor = await zstdCompressStream();
      const tap = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hasher.update(chunk);
          size += chunk.length;
          callback(null, chunk);
        },
      });
      // Our own sink: a file stream without autoClose never emits 'close', and pipeline waits for it.
      const sink = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          handle.write(chunk).then(() => {
            callback();
          }, callback);
        },
      });
      const written = pipeline(compressor, tap, sink);
      await Promise.all([
        (async () => {
          await nar.send(compressor, undefined);
        })().catch((err: unknown) => {
          compressor.destroy(err instanceof Error ? err : new Error(String(err)));
          throw err;
        }),
        written,
      ]);
      await handle.sync();
    } catch (err) {
      await handle.close();
      await unlinkQuietly(temp);
      throw err;
    }
    await handle.close();
    const entry: CompressedNar = {
      narHash: nar.narHash,
      fileHash: hashFromDigest("sha256", hasher.digest()),
      fileSize: size,
      lastAccess: this.now(),
    };
    if (size > this.options.maxBytes) {
      await unlinkQuietly(temp);
      return undefined;
    }
    await this.fit(size);
    await rename(temp, this.fileOf(entry));
    this.add(entry);
    this.options.log.debug(
      { storePath: nar.storePath, narSize: nar.narSize, fileSize: size },
      "NAR compressed",
    );
    return entry;
  }

  private add(entry: CompressedNar): void {
    const old = this.entries.get(entry.narHash);
    if (old !== undefined) this.bytes -= old.fileSize;
    this.entries.set(entry.narHash, entry);
    this.persisted.set(entry, entry.lastAccess);
    this.bytes += entry.fileSize;
  }

  private forget(entry: CompressedNar): void {
    if (this.entries.get(entry.narHash) !== entry) return;
    this.entries.delete(entry.narHash);
    this.bytes -= entry.fileSize;
  }

  private async evict(entry: CompressedNar): Promise<void> {
    this.forget(entry);
    // A file being sent stays readable through its open descriptor.
    await unlinkQuietly(this.fileOf(entry));
  }

  /** Marks an entry used; the file's mtime carries it across restarts (at most every ten minutes). */
  private touch(entry: CompressedNar): void {
    const t = this.now();
    entry.lastAccess = t;
    if (t - (this.persisted.get(entry) ?? 0) < PERSIST_ACCESS_MS) return;
    this.persisted.set(entry, t);
    const file = this.fileOf(entry);
    utimes(file, t / 1000, t / 1000).catch((err: unknown) => {
      this.options.log.debug({ ...errorFields(err), file }, "compressed NARs: utimes");
    });
  }

  private fileOf(entry: { narHash: string; fileHash: Hash }): string {
    return path.join(this.dir, fileName(entry));
  }

  private byAge(): CompressedNar[] {
    return [...this.entries.values()].sort((a, b) => a.lastAccess - b.lastAccess);
  }
}
