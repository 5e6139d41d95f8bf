/**
 * Serialises a filesystem tree as a NAR, byte-identical to `nix-store --dump`.
 *
 * Speed comes from doing what Nix does: synchronous `lstat`/`open`/`read`
 * into large buffers (an empty file is never opened), with entry types
 * from `readdir` (no `lstat` per directory or symlink), paths as strings
 * while they are ASCII and names sorted as latin1 strings (no Buffer per
 * name, no native call per comparison).
 * The event loop is blocked only while one output chunk is filled; callers
 * get the loop back between chunks. Memory is a few chunks, whatever the
 * file sizes. A byte range is produced without reading file contents (or
 * even opening files) outside it, so a server can honour `Range` cheaply.
 * `narOfSize` (a small tree, whole, into one buffer) has its own walk: one
 * `lstat` per node and a few small functions, cheap for V8 to optimise.
 */

import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  readdirSync,
  readlinkSync,
  type Dirent,
  type Stats,
} from "node:fs";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { Writable } from "node:stream";

import { OgygiaError, errorMessage, type SystemError } from "../core/index.js";
import type { BufferPool } from "./buffer-pool.js";
import { hashFromDigest, type Hash } from "./hash.js";
import { NAR_MAGIC, ZEROS, encodeTokens, padding } from "./nar-format.js";

const MAGIC = encodeTokens(NAR_MAGIC);
const REGULAR = encodeTokens("(", "type", "regular", "contents");
const EXECUTABLE = encodeTokens("(", "type", "regular", "executable", "", "contents");
const DIRECTORY = encodeTokens("(", "type", "directory");
const SYMLINK = encodeTokens("(", "type", "symlink", "target");
const ENTRY = encodeTokens("entry", "(", "name");
const NODE = encodeTokens("node");
const CLOSE = encodeTokens(")");
const SLASH = Buffer.from("/");
const EMPTY = Buffer.alloc(0);

// O_NONBLOCK: a regular file replaced by a FIFO after readdir must not hang us.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** Default output chunk size: large reads are what make the dump fast. */
export const DEFAULT_NAR_CHUNK_SIZE = 1024 * 1024;
const MIN_CHUNK_SIZE = 64 * 1024;

const enum Kind {
  Unknown,
  File,
  Directory,
  Symlink,
  Other,
}

function kindOfDirent(entry: Dirent): Kind {
  if (entry.isFile()) return Kind.File;
  if (entry.isDirectory()) return Kind.Directory;
  if (entry.isSymbolicLink()) return Kind.Symlink;
  // DT_UNKNOWN (some filesystems): every predicate is false; ask lstat.
  if (entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice()) {
    return Kind.Other;
  }
  return Kind.Unknown;
}

function kindOfStats(stats: Stats): Kind {
  if (stats.isFile()) return Kind.File;
  if (stats.isDirectory()) return Kind.Directory;
  if (stats.isSymbolicLink()) return Kind.Symlink;
  return Kind.Other;
}

/**
 * A path as the walk holds it: a string while every name on it is ASCII
 * (cheaper for every fs call than a Buffer), bytes once a name is not.
 */
type WalkPath = string | Buffer;

function show(path: WalkPath): string {
  return typeof path === "string" ? path : path.toString("utf8");
}

// Any byte but printable ASCII: the name goes into a Buffer path (its latin1 text is not its UTF-8).
const NON_ASCII = /[^ -~]/;

/** `parent/name`, with `name` as readdir gave it in latin1 (one char per byte). */
function childPath(parent: WalkPath, name: string): WalkPath {
  if (typeof parent === "string" && !NON_ASCII.test(name)) return `${parent}/${name}`;
  const head = typeof parent === "string" ? Buffer.from(parent) : parent;
  return Buffer.concat([head, SLASH, Buffer.from(name, "latin1")]);
}

/** Bytewise order of latin1 names (one char per byte) is their string order. */
function byName(a: Dirent, b: Dirent): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function dumpError(path: WalkPath, reason: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_NAR", `cannot archive '${show(path)}': ${reason}`, {
    cause,
  });
}

function isSystemError(err: unknown): err is SystemError {
  return err instanceof Error && typeof (err as Partial<SystemError>).code === "string";
}

/** Output chunks with a NAR offset; bytes outside [start, end) are counted, not kept. */
class ChunkWriter {
  pos = 0;
  buf: Buffer = EMPTY;
  n = 0;
  readonly full: Buffer[] = [];
  private readonly scratch = Buffer.alloc(8);

  constructor(
    readonly start: number,
    readonly end: number,
    private readonly allocate: () => Buffer,
  ) {}

  /** Room in the current chunk, taking a new one when it is full. */
  room(): number {
    if (this.n === this.buf.length) {
      if (this.n > 0) this.full.push(this.buf.subarray(0, this.n));
      this.buf = this.allocate();
      this.n = 0;
    }
    return this.buf.length - this.n;
  }

  put(src: Buffer): void {
    const len = src.length;
    if (this.pos + len <= this.start || this.pos >= this.end) {
      this.pos += len;
      return;
    }
    let off = 0;
    if (this.pos < this.start) {
      off = this.start - this.pos;
      this.pos = this.start;
    }
    const stop = Math.min(len, off + (this.end - this.pos));
    while (off < stop) {
      const k = Math.min(stop - off, this.room());
      src.copy(this.buf, this.n, off, off + k);
      this.n += k;
      off += k;
      this.pos += k;
    }
    this.pos += len - stop;
  }

  putNumber(value: number): void {
    this.scratch.writeUInt32LE(value % 0x100000000, 0);
    this.scratch.writeUInt32LE(Math.floor(value / 0x100000000), 4);
    this.put(this.scratch);
  }

  /** A string token whose bytes are `text`'s latin1 chars (a name from readdir). */
  putName(text: string): void {
    const len = text.length;
    this.putNumber(len);
    const total = len + padding(len);
    // Fast path: inside the range and in the current chunk: no intermediate Buffer.
    if (this.pos >= this.start && this.pos + total <= this.end && this.room() >= total) {
      this.buf.write(text, this.n, len, "latin1");
      this.buf.fill(0, this.n + len, this.n + total);
      this.n += total;
      this.pos += total;
      return;
    }
    this.put(Buffer.from(text, "latin1"));
    const pad = padding(len);
    if (pad > 0) this.put(ZEROS.subarray(0, pad));
  }

  putString(bytes: Buffer): void {
    this.putNumber(bytes.length);
    this.put(bytes);
    const pad = padding(bytes.length);
    if (pad > 0) this.put(ZEROS.subarray(0, pad));
  }

  /** Hands out the finished chunks (and, at the end, the partial one). */
  take(final = false): Buffer[] {
    if (final && this.n > 0) {
      this.full.push(this.buf.subarray(0, this.n));
      this.buf = EMPTY;
      this.n = 0;
    }
    return this.full.splice(0);
  }
}

interface Frame {
  path: WalkPath;
  /** Names in latin1: one char per byte, whatever the name's encoding. */
  entries: Dirent[];
  next: number;
}

export interface NarRange {
  /** First NAR byte to produce (default 0). */
  start?: number;
  /** How many bytes from `start` (default: to the end of the NAR). */
  length?: number;
}

export interface NarDumpResult {
  /** Bytes produced (the range's length, or the whole NAR). */
  bytes: number;
  /** Size of the whole NAR; known when the walk reached the end. */
  narSize: number | undefined;
}

function checkRange(range: NarRange): { start: number; end: number } {
  const start = range.start ?? 0;
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new RangeError(`NAR range start must be a non-negative integer, got ${start}`);
  }
  if (range.length === undefined) return { start, end: Infinity };
  if (!Number.isSafeInteger(range.length) || range.length < 0) {
    throw new RangeError(`NAR range length must be a non-negative integer, got ${range.length}`);
  }
  return { start, end: start + range.length };
}

/**
 * The engine: a synchronous generator of NAR chunks for `root`, each taken
 * from `allocate()`. Returns the NAR size when the walk completed.
 */
function* narChunks(
  root: string,
  range: NarRange,
  allocate: () => Buffer,
): Generator<Buffer, NarDumpResult, undefined> {
  const { start, end } = checkRange(range);
  const ranged = start > 0 || end !== Infinity;
  const out = new ChunkWriter(start, end, allocate);
  const stack: Frame[] = [];
  let path: WalkPath = root;
  let kind = Kind.Unknown;
  let produced = 0;
  let fd = -1;

  try {
    out.put(MAGIC);
    for (;;) {
      // 1. Write the node at `path` (directories push a frame and continue below).
      if (kind === Kind.Unknown) kind = kindOfStats(lstatSync(path));
      if (kind === Kind.File) {
        // lstat first, as Nix does: an empty file (or one outside the range) is never opened.
        const stats: Stats = lstatSync(path);
        if (!stats.isFile()) throw dumpError(path, "it changed type while being archived");
        const size = stats.size;
        out.put((stats.mode & 0o100) !== 0 ? EXECUTABLE : REGULAR);
        out.putNumber(size);
        const contentStart = out.pos;
        const from = Math.max(start, contentStart) - contentStart;
        const to = Math.min(end, contentStart + size) - contentStart;
        if (from < to) {
          fd = openSync(path, OPEN_FLAGS);
          // A whole file is read to exactly `size` bytes (a shorter one fails below, as
          // in Nix); a range starting inside it must know the size is still right.
          if (ranged && fstatSync(fd).size !== size) {
            throw dumpError(path, "it changed size while being archived");
          }
          let offset = from;
          while (offset < to) {
            const room = out.room();
            for (const chunk of out.take()) {
              produced += chunk.length;
              yield chunk;
            }
            const got = readSync(fd, out.buf, out.n, Math.min(room, to - offset), offset);
            if (got === 0) throw dumpError(path, "it shrank while being archived");
            out.n += got;
            offset += got;
          }
        }
        if (fd >= 0) {
          closeSync(fd);
          fd = -1;
        }
        out.pos = contentStart + size;
        const pad = padding(size);
        if (pad > 0) out.put(ZEROS.subarray(0, pad));
        out.put(CLOSE);
        if (stack.length > 0) out.put(CLOSE);
      } else if (kind === Kind.Directory) {
        out.put(DIRECTORY);
        const entries = readdirSync(path, { withFileTypes: true, encoding: "latin1" });
        entries.sort(byName);
        stack.push({ path, entries, next: 0 });
      } else if (kind === Kind.Symlink) {
        out.put(SYMLINK);
        out.putString(readlinkSync(path, { encoding: "buffer" }));
        out.put(CLOSE);
        if (stack.length > 0) out.put(CLOSE);
      } else {
        throw dumpError(path, "it is not a regular file, directory or symlink");
      }

      // 2. Move to the next entry, closing finished directories.
      let top = stack.at(-1);
      while (top !== undefined && top.next === top.entries.length) {
        stack.pop();
        out.put(CLOSE);
        if (stack.length > 0) out.put(CLOSE);
        top = stack.at(-1);
      }
      for (const chunk of out.take()) {
        produced += chunk.length;
        yield chunk;
      }
      if (top === undefined) break;
      if (out.pos >= end) {
        for (const chunk of out.take(true)) {
          produced += chunk.length;
          yield chunk;
        }
        return { bytes: produced, narSize: undefined };
      }
      const entry = top.entries[top.next++];
      if (entry === undefined) throw new Error("narChunks: directory frame overrun");
      out.put(ENTRY);
      out.putName(entry.name);
      out.put(NODE);
      path = childPath(top.path, entry.name);
      kind = kindOfDirent(entry);
    }
    for (const chunk of out.take(true)) {
      produced += chunk.length;
      yield chunk;
    }
    return { bytes: produced, narSize: out.pos };
  } catch (err) {
    if (err instanceof OgygiaError) throw err;
    if (isSystemError(err)) throw dumpError(path, errorMessage(err), err);
    throw err;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function checkChunkSize(chunkSize: number | undefined): number {
  const size = chunkSize ?? DEFAULT_NAR_CHUNK_SIZE;
  if (!Number.isSafeInteger(size) || size < MIN_CHUNK_SIZE) {
    throw new RangeError(`NAR chunk size must be an integer >= ${MIN_CHUNK_SIZE}, got ${size}`);
  }
  return size;
}

export interface NarStreamOptions extends NarRange {
  /** Output chunk size in bytes (default 1 MiB, at least 64 KiB). */
  chunkSize?: number;
}

/** Longest the event loop is held by the synchronous walk before we yield it. */
const SLICE_MS = 5;

/** Yields to the event loop once `SLICE_MS` have passed since the last yield. */
function makeSlicer(): () => Promise<void> | undefined {
  let sliceStart = performance.now();
  return () => {
    const now = performance.now();
    if (now - sliceStart < SLICE_MS) return undefined;
    return yieldToLoop().then(() => {
      sliceStart = performance.now();
    });
  };
}

/**
 * The NAR of `path` (a store path's physical location, or any tree) as an
 * async iterable of fresh Buffers the consumer may keep.
 */
export async function* narStream(
  path: string,
  options: NarStreamOptions = {},
): AsyncGenerator<Buffer, NarDumpResult, undefined> {
  const size = checkChunkSize(options.chunkSize);
  const chunks = narChunks(path, options, () => Buffer.allocUnsafeSlow(size));
  const slice = makeSlicer();
  try {
    for (;;) {
      const step = chunks.next();
      if (step.done === true) return step.value;
      yield step.value;
      await slice();
    }
  } finally {
    chunks.return({ bytes: 0, narSize: undefined });
  }
}

export interface WriteNarOptions extends NarStreamOptions {
  /** Also compute the NAR's SHA-256 (whole NAR only, not with a range). */
  hash?: boolean;
  /**
   * Recycle output buffers once `out` reports a chunk written (its write
   * callback). Only for sinks that are done with a chunk by then (net.Socket,
   * fs.WriteStream, http.ServerResponse), never a PassThrough or Transform.
   */
  reuseBuffers?: boolean;
  /**
   * Take output buffers from this pool and give them back as `reuseBuffers`
   * does (implies it; the chunk size is the pool's). Shared across
   * responses, it spares every response its own allocations.
   */
  pool?: BufferPool;
  /** Chunks handed to `out` and not yet reported written (default 4): memory and pipelining. */
  maxInFlight?: number;
  /**
   * With a chunk in flight, the next one waits while `out` holds this many
   * bytes (its `writableLength`): a destination that takes nothing (a
   * client that does not read) then holds one chunk, not `maxInFlight`.
   * Default: no such wait.
   */
  maxBufferedBytes?: number;
  signal?: AbortSignal;
}

export interface WriteNarResult extends NarDumpResult {
  /** SHA-256 of the NAR when `hash` was set. */
  narHash: Hash | undefined;
}

const DEFAULT_IN_FLIGHT = 4;

/** The whole pooled buffer a chunk was cut from (chunks start at offset 0). */
function wholeBuffer(chunk: Buffer, size: number): Buffer {
  return Buffer.from(chunk.buffer, chunk.byteOffset, size);
}

/**
 * Streams the NAR of `path` into `out`, optionally only a byte range. Flow
 * control uses write callbacks: at most `maxInFlight` chunks are queued in
 * `out`, so producing the next chunk overlaps with writing the previous
 * ones. Does not end `out`. Fails with ERR_OGYGIA_NIX_NAR when the tree
 * cannot be read or `out` fails or closes.
 */
export async function writeNar(
  path: string,
  out: Writable,
  options: WriteNarOptions = {},
): Promise<WriteNarResult> {
  const shared = options.pool;
  if (shared !== undefined && options.chunkSize !== undefined) {
    if (options.chunkSize !== shared.bufferSize) {
      throw new RangeError(
        `writeNar: chunkSize ${options.chunkSize} differs from the pool's ${shared.bufferSize}`,
      );
    }
  }
  const size = checkChunkSize(shared?.bufferSize ?? options.chunkSize);
  const maxInFlight = options.maxInFlight ?? DEFAULT_IN_FLIGHT;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) {
    throw new RangeError(`writeNar: maxInFlight must be a positive integer, got ${maxInFlight}`);
  }
  const maxBuffered = options.maxBufferedBytes;
  const ranged = (options.start ?? 0) > 0 || options.length !== undefined;
  if (options.hash === true && ranged) {
    throw new TypeError("writeNar: a NAR hash needs the whole NAR, not a range");
  }
  const hasher = options.hash === true ? createHash("sha256") : undefined;
  const reuse = options.reuseBuffers === true || shared !== undefined;
  const pool: Buffer[] = [];
  const take = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(size);
  const chunks = narChunks(path, options, shared === undefined ? take : () => shared.take());
  const slice = makeSlicer();
  const signal = options.signal;

  let inFlight = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const onClose = (): void => {
    failure ??= new OgygiaError(
      "ERR_OGYGIA_NIX_NAR",
      `the destination closed while streaming the NAR of '${path}'`,
    );
    notify();
  };
  const onAbort = (): void => {
    const reason: unknown = signal?.reason;
    failure ??= reason instanceof Error ? reason : new Error(`aborted: ${String(reason)}`);
    notify();
  };
  const settle = (): Promise<void> =>
    new Promise((resolve) => {
      wake = resolve;
    });
  const check = (): void => {
    if (failure === undefined && (out.destroyed || out.writableEnded)) onClose();
    if (failure !== undefined) throw failure;
  };

  const onError = (err: Error): void => {
    failure ??= new OgygiaError(
      "ERR_OGYGIA_NIX_NAR",
      `writing the NAR of '${path}' failed: ${errorMessage(err)}`,
      { cause: err },
    );
    notify();
  };
  out.once("close", onClose);
  // While we write, a sink error becomes our rejection rather than an unhandled event.
  out.on("error", onError);
  signal?.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    signal?.throwIfAborted();
    for (;;) {
      check();
      const step = chunks.next();
      if (step.done === true) {
        finished = true;
        while (inFlight > 0) {
          check();
          await settle();
        }
        check();
        return { ...step.value, narHash: hasher && hashFromDigest("sha256", hasher.digest()) };
      }
      const chunk = step.value;
      hasher?.update(chunk);
      inFlight += 1;
      out.write(chunk, (err) => {
        inFlight -= 1;
        if (err != null) {
          failure ??= new OgygiaError(
            "ERR_OGYGIA_NIX_NAR",
            `writing the NAR of '${path}' failed: ${errorMessage(err)}`,
            { cause: err },
          );
        } else if (shared !== undefined) {
          shared.give(chunk);
        } else if (reuse && pool.length <= maxInFlight) {
          pool.push(wholeBuffer(chunk, size));
        }
        notify();
      });
      if (
        inFlight >= maxInFlight ||
        (maxBuffered !== undefined && inFlight > 0 && out.writableLength >= maxBuffered)
      ) {
        await settle();
      } else await slice();
    }
  } finally {
    out.off("close", onClose);
    out.off("error", onError);
    signal?.removeEventListener("abort", onAbort);
    if (!finished) chunks.return({ bytes: 0, narSize: undefined });
  }
}

/** NAR SHA-256 and size of `path`, reading it once with recycled buffers. */
export async function hashPath(path: string): Promise<{ narHash: Hash; narSize: number }> {
  const size = DEFAULT_NAR_CHUNK_SIZE;
  const pool: Buffer[] = [];
  const hasher = createHash("sha256");
  const chunks = narChunks(path, {}, () => pool.pop() ?? Buffer.allocUnsafeSlow(size));
  const slice = makeSlicer();
  try {
    for (;;) {
      const step = chunks.next();
      if (step.done === true) {
        const narSize = step.value.narSize;
        if (narSize === undefined) throw new Error("hashPath: walk ended early");
        return { narHash: hashFromDigest("sha256", hasher.digest()), narSize };
      }
      hasher.update(step.value);
      // Hashed: the chunk's buffer may be filled again.
      pool.push(wholeBuffer(step.value, size));
      await slice();
    }
  } finally {
    chunks.return({ bytes: 0, narSize: undefined });
  }
}

/** Size of the NAR of `path` from metadata alone: no file is opened. */
export function narSizeOf(path: string): number {
  const far = Number.MAX_SAFE_INTEGER;
  const chunks = narChunks(path, { start: far, length: 0 }, () => EMPTY);
  for (;;) {
    const step = chunks.next();
    if (step.done === true) {
      if (step.value.narSize === undefined) throw new Error("narSizeOf: walk ended early");
      return step.value.narSize;
    }
  }
}

/** Thrown by `narOfSize`'s writes when the tree needs more than the buffer. */
const GREW = new Error("narOfSize: the tree is larger than expected");

/** `src` into `nar` at `at`; the position after it. */
function putBytes(nar: Buffer, at: number, src: Uint8Array): number {
  const next = at + src.length;
  if (next > nar.length) throw GREW;
  nar.set(src, at);
  return next;
}

/** A NAR number (u64, little-endian) into `nar` at `at`; the position after it. */
function putU64(nar: Buffer, at: number, value: number): number {
  if (at + 8 > nar.length) throw GREW;
  nar.writeUInt32LE(value % 0x100000000, at);
  nar.writeUInt32LE(Math.floor(value / 0x100000000), at + 4);
  return at + 8;
}

/** Zero padding of a token of `length` bytes; the position after it. */
function putPadding(nar: Buffer, at: number, length: number): number {
  const pad = padding(length);
  if (pad === 0) return at;
  if (at + pad > nar.length) throw GREW;
  nar.fill(0, at, at + pad);
  return at + pad;
}

/** `entry ( name <name> node`, the name in latin1 (one char per byte, as readdir gave it). */
function putEntry(nar: Buffer, at: number, name: string): number {
  let n = putBytes(nar, at, ENTRY);
  n = putU64(nar, n, name.length);
  if (n + name.length > nar.length) throw GREW;
  n += nar.write(name, n, name.length, "latin1");
  n = putPadding(nar, n, name.length);
  return putBytes(nar, n, NODE);
}

/** A regular file's node (`lstat`ed as `stats`) into `nar` at `at`; the position after it. */
function putFile(nar: Buffer, at: number, path: WalkPath, stats: Stats): number {
  const size = stats.size;
  let n = putBytes(nar, at, (stats.mode & 0o100) !== 0 ? EXECUTABLE : REGULAR);
  n = putU64(nar, n, size);
  if (n + size > nar.length) throw GREW;
  if (size > 0) {
    // lstat first, as Nix does: an empty file is never opened.
    const fd = openSync(path, OPEN_FLAGS);
    try {
      let offset = 0;
      while (offset < size) {
        const got = readSync(fd, nar, n + offset, size - offset, offset);
        if (got === 0) throw dumpError(path, "it shrank while being archived");
        offset += got;
      }
    } finally {
      closeSync(fd);
    }
  }
  n = putPadding(nar, n + size, size);
  return putBytes(nar, n, CLOSE);
}

/** A directory being written: its sorted names and the next one to write. */
interface WholeFrame {
  path: WalkPath;
  /** Names in latin1: one char per byte, whatever the name's encoding. */
  names: string[];
  next: number;
}

/**
 * The NAR of `root` into `nar`, which it must fill exactly; false when it
 * ends short. Throws `GREW` when it needs more. One `lstat` per node (the
 * entry type `readdir` gives is not needed: a file needs `lstat` for its
 * size and executable bit anyway), names as latin1 strings in their default
 * (code unit, so byte) order.
 */
function fillNar(nar: Buffer, root: string, at: { path: WalkPath }): boolean {
  const stack: WholeFrame[] = [];
  let path: WalkPath = root;
  let n = putBytes(nar, 0, MAGIC);
  for (;;) {
    at.path = path;
    const stats = lstatSync(path);
    if (stats.isFile()) {
      n = putFile(nar, n, path, stats);
    } else if (stats.isDirectory()) {
      n = putBytes(nar, n, DIRECTORY);
      const names = readdirSync(path, "latin1");
      names.sort();
      stack.push({ path, names, next: 0 });
    } else if (stats.isSymbolicLink()) {
      n = putBytes(nar, n, SYMLINK);
      const target = readlinkSync(path, { encoding: "buffer" });
      n = putU64(nar, n, target.length);
      n = putBytes(nar, n, target);
      n = putPadding(nar, n, target.length);
      n = putBytes(nar, n, CLOSE);
    } else {
      throw dumpError(path, "it is not a regular file, directory or symlink");
    }
    // The entry around a child node, and every directory it finished.
    let top = stack.at(-1);
    if (top !== undefined && top.next > 0) n = putBytes(nar, n, CLOSE);
    while (top !== undefined && top.next === top.names.length) {
      stack.pop();
      n = putBytes(nar, n, CLOSE);
      top = stack.at(-1);
      if (top !== undefined) n = putBytes(nar, n, CLOSE);
    }
    if (top === undefined) return n === nar.length;
    const name = top.names[top.next++] ?? "";
    n = putEntry(nar, n, name);
    path = childPath(top.path, name);
  }
}

/**
 * The whole NAR of `path`, expected to be `narSize` bytes, in one buffer
 * filled by one synchronous walk (for small trees: a server's NARs of at
 * most a few hundred KiB, where a chunked, yielding stream costs more in
 * generator steps, promises and copies than the walk itself). Undefined
 * when the tree's NAR is not `narSize` bytes: the walk stops as soon as it
 * needs more, and a tree that shrank ends short.
 *
 * Its own small functions rather than `narChunks`: a fresh daemon's first
 * pass over small NARs runs this walk once per path (the memory cache keeps
 * the result), and V8's optimising compiler spent more time on the
 * generator, with the whole chunk writer inlined, than the walk itself.
 */
export function narOfSize(path: string, narSize: number): Buffer | undefined {
  if (!Number.isSafeInteger(narSize) || narSize < 1) {
    throw new RangeError(`narOfSize: the size must be a positive integer, got ${narSize}`);
  }
  const nar = Buffer.allocUnsafeSlow(narSize);
  const at: { path: WalkPath } = { path };
  try {
    return fillNar(nar, path, at) ? nar : undefined;
  } catch (err) {
    if (err === GREW) return undefined;
    if (err instanceof OgygiaError) throw err;
    if (isSystemError(err)) throw dumpError(at.path, errorMessage(err), err);
    throw err;
  }
}
