/**
 * Downloading a NAR from peers, once, for every client that wants it.
 *
 * Each chunk from the provider is checked as it arrives (`createNarCheck`:
 * SHA-256, size and the NAR's structure, as NarVerifier checks them; plus
 * the content-address check when only the CA vouches for the path) and
 * handed to every client streaming this NAR, so concurrent requests share
 * one download.
 *
 * Where the bytes live meanwhile: a small NAR (up to `MEMORY_NAR_BYTES`) is
 * held in memory (within `MEMORY_BUDGET` for all downloads) and written to
 * the cache only after it verified. A larger one (or one that does not fit
 * the budget) goes to a temporary cache file as it arrives, and the last
 * `RECENT_BYTES` stay in memory too; a client that falls further behind
 * reads from the file. Clients wait for the network, never for the cache's
 * disk (unless it falls `WRITE_HIGH_WATER` behind).
 *
 * No client ever receives the last byte of its response before the whole
 * NAR verified: a mismatch then cuts every response short (the server
 * destroys the connection), so no client sees a complete-looking wrong
 * body, and nothing is cached.
 *
 * A body read into pooled slabs (`peer-stream.ts`) is handed over chunk
 * by chunk with no copy: the memory window, a queued cache write and a
 * socket write in flight each hold a reference on the chunk's slab
 * (`slabs.ts`), and the window is let go only once the download is over
 * and no client reads it. A response that is not a `ServerResponse` (whose
 * writes are done with a chunk once their callback ran) gets copies.
 *
 * When a provider fails mid-stream (reset, stall, a short body), the
 * download continues from the next provider at the byte reached (`Range`);
 * when no provider is left, the fetch fails and so do the responses. A
 * verified NAR is written out (if held in memory), fsynced (one file at a
 * time) and handed to the cache.
 */

import { createHash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import { ServerResponse } from "node:http";
import { Readable, type Writable } from "node:stream";

import { OgygiaError } from "../../core/index.js";
import {
  checkNarExpectations,
  createNarParser,
  hashFromDigest,
  type Hash,
} from "../../nix/index.js";
import { errorFields, type Logger } from "../../log/index.js";
import { SMALL_NAR_BYTES, type NarCache, type TempEntry } from "./nar-cache.js";
import type { P2pMetrics } from "./metrics.js";
import { isPooledBody, type PooledBody } from "./peer-stream.js";
import { peerSlabs } from "./slabs.js";
import type { ContentCheck } from "./peer-narinfo.js";
import { slowPeerError, watchRate, type MinRate, type RateWatch } from "./rate.js";
import type { ByteRange } from "../http/index.js";

/** One provider of a NAR. */
export interface NarSource {
  /** Redacted peer URL, for logs. */
  readonly label: string;
  /**
   * The NAR's bytes from `offset` to its end. Throws when the provider
   * cannot start; the iterable throws when it fails mid-way.
   */
  open(offset: number, signal: AbortSignal): Promise<AsyncIterable<Buffer>>;
}

export interface FetchSpec {
  hashPart: string;
  /** nix32 NAR hash. */
  narHash: string;
  expectedHash: Hash;
  narSize: number;
  storePath: string;
  /** The narinfo to cache with the NAR. */
  narInfo: Buffer;
  contentCheck?: ContentCheck | undefined;
  /**
   * The next provider to try, given those tried already (in order);
   * undefined when there is none left.
   */
  nextSource(tried: readonly NarSource[]): Promise<NarSource | undefined>;
  /** Called when the bytes did not verify: `sources` contributed to them. */
  onMismatch?(sources: readonly NarSource[], err: unknown): void;
  /** Called when a provider failed mid-way or could not start. */
  onSourceFailure?(source: NarSource, err: unknown): void;
}

export interface NarFetcher {
  /** Streams the NAR (or `range`) into `out` and ends it, joining or starting its download. */
  stream(spec: FetchSpec, out: Writable, range: ByteRange | undefined): Promise<void>;
  /**
   * Starts the NAR's download with no client (read-ahead), unless it is in
   * flight already or too large to cache; it is verified and cached like
   * any other. Resolves, once it is done, with whether a download started.
   */
  prefetch(spec: FetchSpec): Promise<boolean>;
  /**
   * Joins or starts the NAR's download and resolves once its first bytes
   * arrived (or it verified); throws the download's error when it failed first.
   */
  flowing(spec: FetchSpec): Promise<void>;

  /** Downloads in flight (until their NAR is cached). */
  readonly active: number;
  /** Aborts every download (shutdown). */
  abortAll(): Promise<void>;
}

/**
 * NARs up to this size are downloaded into memory while `MEMORY_BUDGET`
 * allows (one file write once verified); larger ones go to the cache file as
 * their bytes pass. Holding NARs of up to 32 MiB as chunk lists until they
 * verified cost more in garbage collection than the streaming writes.
 */
export const MEMORY_NAR_BYTES = 1024 * 1024;
/** Bytes of NARs held in memory at once, from download to cache write. */
export const MEMORY_BUDGET = 128 * 1024 * 1024;
/** For a NAR downloaded to a file: the latest bytes also kept in memory. */
const RECENT_BYTES = 8 * 1024 * 1024;
/** Bytes read from the temporary file per write to a client. */
const READ_CHUNK = 1024 * 1024;
/** Bytes waiting for the disk before the download waits for it. */
const WRITE_HIGH_WATER = 8 * 1024 * 1024;

type State = "running" | "verified" | "failed";

/** Chunks in memory, in order, from some offset up to `received`. */
interface Chunks {
  offsets: number[];
  /** Each holds a reference on its slab (`slabs.ts`) while here. */
  buffers: Buffer[];
  bytes: number;
}

function isReadable(body: AsyncIterable<Buffer>): body is Readable {
  return body instanceof Readable;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function fetchFailure(spec: FetchSpec, what: string, cause?: unknown): OgygiaError {
  return new OgygiaError(
    "ERR_OGYGIA_IRISD_PEER",
    `cannot fetch the NAR of ${spec.storePath}: ${what}`,
    { cause },
  );
}

function wake(fetch: Download): void {
  const waiters = fetch.waiters;
  fetch.waiters = [];
  for (const resolve of waiters) resolve();
}

/**
 * Wakes the clients once the current burst of socket reads is processed
 * (setImmediate runs after the I/O phase), so each wake hands them every
 * chunk that arrived meanwhile, to send in one write.
 */
function wakeSoon(fetch: Download): void {
  if (fetch.wakeScheduled || fetch.waiters.length === 0) return;
  fetch.wakeScheduled = true;
  setImmediate(() => {
    fetch.wakeScheduled = false;
    wake(fetch);
  });
}

function changed(fetch: Download): Promise<void> {
  return new Promise((resolve) => fetch.waiters.push(resolve));
}

/** Bytes from `position` (before `limit`) if they are in memory. */
function fromMemory(chunks: Chunks, position: number, limit: number): Buffer | undefined {
  const { offsets, buffers } = chunks;
  let low = 0;
  let high = offsets.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const offset = offsets[mid] ?? 0;
    const buffer = buffers[mid];
    if (buffer === undefined) return undefined;
    if (position < offset) high = mid - 1;
    else if (position >= offset + buffer.length) low = mid + 1;
    else return buffer.subarray(position - offset, Math.min(buffer.length, limit - offset));
  }
  return undefined;
}

/** Resolves once `out` may take more, rejects when it closed first. */
function drained(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (out.destroyed) {
      reject(new Error("the stream was destroyed"));
      return;
    }
    const cleanup = (): void => {
      out.off("drain", onDrain);
      out.off("close", onClose);
    };
    const onDrain = (): void => {
      cleanup();
      resolve();
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error("the client went away"));
    };
    out.on("drain", onDrain);
    out.on("close", onClose);
  });
}

/** Writes `buffers` at `position` (all of them: a short write is retried). */
async function writeAll(
  handle: FileHandle,
  buffers: readonly Buffer[],
  position: number,
): Promise<void> {
  let pending = [...buffers];
  let at = position;
  while (pending.length > 0) {
    let { bytesWritten } = await handle.writev(pending, at);
    at += bytesWritten;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (bytesWritten >= buffer.length) bytesWritten -= buffer.length;
      else {
        rest.push(buffer.subarray(bytesWritten));
        bytesWritten = 0;
      }
    }
    pending = rest;
  }
}

/**
 * NarVerifier's checks (SHA-256, size, structure) as plain calls: the same
 * src/nix pieces without a Transform stream, whose machinery cost more per
 * 64 KiB chunk than the hashing itself on this path (measured: about 0.4 s
 * of CPU per 380 MB). `write` throws once the NAR is too long or
 * malformed; `end` throws unless the hash and size are the expected ones.
 */
export function createNarCheck(options: {
  expectedHash: Hash;
  expectedSize: number;
  what: string;
}): ContentCheck {
  const hasher = createHash("sha256");
  const parser = createNarParser(() => undefined, {
    what: options.what,
    maxSize: options.expectedSize,
  });
  let size = 0;
  return {
    write(chunk) {
      size += chunk.length;
      if (size > options.expectedSize) {
        throw new OgygiaError(
          "ERR_OGYGIA_NIX_NAR",
          `NAR from ${options.what} is longer than the expected ${options.expectedSize} bytes`,
        );
      }
      hasher.update(chunk);
      parser.write(chunk);
    },
    end() {
      parser.end();
      checkNarExpectations(
        { narHash: hashFromDigest("sha256", hasher.digest()), narSize: size },
        options,
        options.what,
      );
    },
  };
}

interface FetcherEnv {
  cache: NarCache;
  log: Logger;
  metrics?: P2pMetrics | undefined;
  /** Providers slower than this are cut (see `rate.ts`). */
  minRate?: MinRate | undefined;
}

/** Chunks waiting for the disk (file mode); one writer drains them in batches. */
class FileWriter {
  queuedBytes = 0;
  /** The first write error: the download fails with it. */
  error: unknown;
  private queued: Buffer[] = [];
  private writing: Promise<void> | undefined;

  constructor(
    private readonly download: Download,
    private readonly file: TempEntry & { handle: FileHandle },
  ) {}

  push(chunk: Buffer): void {
    peerSlabs.ref(chunk);
    this.queued.push(chunk);
    this.queuedBytes += chunk.length;
    void this.flush();
  }

  /** Starts writing what is queued unless a write is under way; resolves when it ends. */
  flush(): Promise<void> {
    if (this.writing !== undefined || this.queued.length === 0) {
      return this.writing ?? Promise.resolve();
    }
    this.writing = this.drain()
      .catch((err: unknown) => {
        this.error = err;
      })
      .finally(() => {
        this.writing = undefined;
      });
    return this.writing;
  }

  /** Resolves once the write under way (if any) ended. */
  async settled(): Promise<void> {
    await this.writing;
  }

  close(): Promise<void> {
    return this.file.handle.close().catch(() => undefined);
  }

  private async drain(): Promise<void> {
    const download = this.download;
    while (this.queued.length > 0) {
      const batch = this.queued;
      this.queued = [];
      this.queuedBytes = 0;
      await writeAll(this.file.handle, batch, this.file.offset + download.written);
      for (const buffer of batch) {
        download.written += buffer.length;
        peerSlabs.unref(buffer);
      }
      download.trimMemory();
      wake(download);
    }
  }
}

/** One NAR's download, shared by every client streaming it. */
class Download {
  state: State = "running";
  error: unknown;
  /** Bytes received and checked so far. */
  received = 0;
  /** Bytes on disk so far (file mode). */
  written = 0;
  readers = 0;
  /** Over (cached or failed) and out of the fetcher's map: no client joins any more. */
  finished = false;
  readonly memory: Chunks = { offsets: [], buffers: [], bytes: 0 };
  temp: TempEntry | undefined;
  /** For clients behind the memory window (file mode). */
  readHandle: FileHandle | undefined;
  /** Resolves once the temporary file is open (file mode), or at once. */
  readonly opened: Promise<void>;
  done: Promise<void> = Promise.resolve();
  readonly controller = new AbortController();
  waiters: (() => void)[] = [];
  wakeScheduled = false;
  private markOpened: () => void = () => undefined;
  private writer: FileWriter | undefined;
  private readonly check: ContentCheck;
  /** The bytes are wrong: no other provider can fix that. */
  private badBytes: unknown;
  private readonly contributors: NarSource[] = [];

  constructor(
    readonly spec: FetchSpec,
    /** Held in memory until cached (else: a file as it comes). */
    readonly inMemory: boolean,
    private readonly env: FetcherEnv,
  ) {
    this.opened = new Promise<void>((resolve) => {
      this.markOpened = resolve;
    });
    this.check = createNarCheck({
      what: `${spec.storePath} from peers`,
      expectedHash: spec.expectedHash,
      expectedSize: spec.narSize,
    });
  }

  /** Downloads and verifies into memory, or into `temp` as it comes. */
  async run(): Promise<void> {
    await this.openFile();
    try {
      await this.fromProviders();
      const failure = this.fatal();
      if (failure !== undefined) throw asError(failure);
      this.check.end();
      this.spec.contentCheck?.end();
      await this.writer?.flush();
      if (this.writer?.error !== undefined) throw asError(this.writer.error);
    } catch (err) {
      await this.writer?.settled();
      await this.writer?.close();
      const mismatch = err instanceof OgygiaError && err.code === "ERR_OGYGIA_NIX_NAR";
      if (mismatch) this.spec.onMismatch?.(this.contributors, err);
      throw err;
    }
  }

  private async openFile(): Promise<void> {
    if (this.inMemory) {
      this.markOpened();
      return;
    }
    try {
      this.temp = await this.env.cache.createTemp(this.spec.narInfo);
      this.readHandle = await open(this.temp.path, "r");
    } finally {
      this.markOpened();
    }
    const { handle } = this.temp;
    if (handle !== undefined) this.writer = new FileWriter(this, { ...this.temp, handle });
  }

  /** Provider after provider, each from the byte reached, until the NAR is complete or bad. */
  private async fromProviders(): Promise<void> {
    const { spec } = this;
    const { log, metrics } = this.env;
    const tried: NarSource[] = [];
    while (this.received < spec.narSize && this.fatal() === undefined) {
      const source = await spec.nextSource(tried);
      if (source === undefined) {
        throw fetchFailure(
          spec,
          tried.length === 0
            ? "no peer offers it"
            : `every provider failed (${tried.map((s) => s.label).join(", ")})`,
        );
      }
      tried.push(source);
      if (this.received > 0) {
        metrics?.failover();
        log.info(
          { storePath: spec.storePath, peer: source.label, offset: this.received },
          "continuing a NAR download from another peer",
        );
      }
      try {
        await this.pump(source);
      } catch (err) {
        if (this.controller.signal.aborted || this.writer?.error !== undefined) throw err;
        if (this.fatal() !== undefined) break;
        spec.onSourceFailure?.(source, err);
        const fields = { storePath: spec.storePath, peer: source.label, ...errorFields(err) };
        log.debug(fields, "source failed");
      }
    }
  }

  /** One provider's body from `received` on, until it ends, fails or brings bad bytes. */
  private async pump(source: NarSource): Promise<void> {
    // One controller per provider: a slow one is cut without ending the download.
    const provider = new AbortController();
    const onAbort = (): void => {
      provider.abort(this.controller.signal.reason);
    };
    this.controller.signal.addEventListener("abort", onAbort, { once: true });
    let watch: RateWatch | undefined;
    try {
      const body = await source.open(this.received, provider.signal);
      const minRate = this.env.minRate;
      if (minRate !== undefined) {
        watch = watchRate(minRate, (bytes) => {
          minRate.onSlow?.(source.label, bytes);
          const err = slowPeerError(source.label, minRate, bytes);
          provider.abort(err);
          if (isReadable(body) || isPooledBody(body)) body.destroy(err);
        });
      }
      await this.pumpBody(source, body, watch);
    } finally {
      watch?.stop();
      this.controller.signal.removeEventListener("abort", onAbort);
    }
  }

  private async pumpBody(
    source: NarSource,
    body: AsyncIterable<Buffer>,
    watch: RateWatch | undefined,
  ): Promise<void> {
    this.contributors.push(source);
    if (isPooledBody(body)) {
      await this.pumpPooled(body, watch);
    } else if (isReadable(body)) {
      await this.pumpReadable(body, watch);
    } else {
      for await (const chunk of body) {
        watch?.add(chunk.length);
        this.accept(chunk);
        if (this.fatal() !== undefined) break;
        const writer = this.writer;
        if (writer !== undefined) {
          if (writer.error !== undefined) throw asError(writer.error);
          if (writer.queuedBytes > WRITE_HIGH_WATER) await writer.flush();
        }
      }
    }
    if (this.fatal() === undefined && this.received < this.spec.narSize) {
      throw new Error(`the body ended after ${this.received} bytes`);
    }
  }

  /**
   * A stream body through its `data` events: each chunk is checked and
   * queued synchronously as it arrives, with no promise per chunk (an
   * async iterator's cost per 64 KiB chunk was a large part of the CPU a
   * download took). Paused while the disk is behind.
   */
  private pumpReadable(body: Readable, watch: RateWatch | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        body.off("data", onData);
        body.off("end", onEnd);
        body.off("error", onError);
        body.off("close", onClose);
        if (err === undefined) resolve();
        else reject(asError(err));
      };
      const onData = (chunk: Buffer): void => {
        watch?.add(chunk.length);
        this.accept(chunk);
        if (this.fatal() !== undefined) {
          finish();
          body.destroy();
          return;
        }
        const writer = this.writer;
        if (writer === undefined) return;
        if (writer.error !== undefined) {
          finish(writer.error);
          body.destroy();
        } else if (writer.queuedBytes > WRITE_HIGH_WATER) {
          body.pause();
          void writer.flush().then(() => {
            if (!settled) body.resume();
          });
        }
      };
      const onEnd = (): void => {
        finish();
      };
      const onError = (err: unknown): void => {
        finish(err);
      };
      const onClose = (): void => {
        // Closed without `end` or `error` (destroyed): the body is short.
        finish(new Error(`the body closed after ${this.received} bytes`));
      };
      body.on("data", onData);
      body.once("end", onEnd);
      body.once("error", onError);
      body.once("close", onClose);
    });
  }

  /** A pooled body: like `pumpReadable`, with its chunks handed over by calls. */
  private pumpPooled(body: PooledBody, watch: RateWatch | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        if (err === undefined) resolve();
        else reject(asError(err));
      };
      body.start({
        chunk: (chunk) => {
          if (settled) return;
          watch?.add(chunk.length);
          this.accept(chunk);
          if (this.fatal() !== undefined) {
            finish();
            body.destroy();
            return;
          }
          const writer = this.writer;
          if (writer === undefined) return;
          if (writer.error !== undefined) {
            finish(writer.error);
            body.destroy();
          } else if (writer.queuedBytes > WRITE_HIGH_WATER) {
            body.pause();
            void writer.flush().then(() => {
              if (!settled) body.resume();
            });
          }
        },
        end: (err) => {
          finish(err);
        },
      });
    });
  }

  /** Read through a call: the checks above must not be narrowed across awaits. */
  private fatal(): unknown {
    return this.badBytes;
  }

  private accept(chunk: Buffer): void {
    try {
      this.check.write(chunk);
      this.spec.contentCheck?.write(chunk);
    } catch (err) {
      this.badBytes = err;
      return;
    }
    const memory = this.memory;
    peerSlabs.ref(chunk);
    memory.offsets.push(this.received);
    memory.buffers.push(chunk);
    memory.bytes += chunk.length;
    this.received += chunk.length;
    this.writer?.push(chunk);
    wakeSoon(this);
  }

  /** Chunks on disk may leave memory once the window is full. */
  trimMemory(): void {
    const memory = this.memory;
    while (
      memory.bytes > RECENT_BYTES &&
      (memory.offsets[0] ?? 0) + (memory.buffers[0]?.length ?? 0) <= this.written
    ) {
      memory.offsets.shift();
      const buffer = memory.buffers.shift();
      if (buffer === undefined) break;
      memory.bytes -= buffer.length;
      peerSlabs.unref(buffer);
    }
  }

  /** Lets the memory window go once the download is over and no client reads it. */
  releaseIfIdle(): void {
    if (!this.finished || this.readers > 0) return;
    const memory = this.memory;
    for (const buffer of memory.buffers) peerSlabs.unref(buffer);
    memory.buffers = [];
    memory.offsets = [];
    memory.bytes = 0;
  }

  /** After verification: the NAR onto disk (memory mode), fsynced, into the cache. */
  async keep(): Promise<void> {
    const { spec } = this;
    const { cache, log } = this.env;
    let temp = this.temp;
    if (this.inMemory) {
      if (spec.narSize + spec.narInfo.length > cache.maxBytes) return;
      temp = await cache.writeTemp(spec.narInfo, this.memory.buffers);
      this.temp = temp;
    } else if (temp !== undefined) {
      await cache.finishTemp(temp);
    }
    if (temp === undefined) return;
    // A small NAR in memory stays there too: the cache serves it without reading the file.
    const nar =
      this.inMemory && spec.narSize <= SMALL_NAR_BYTES
        ? Buffer.concat(this.memory.buffers, spec.narSize)
        : undefined;
    const stored = await cache.store(
      temp,
      {
        hashPart: spec.hashPart,
        narHash: spec.narHash,
        size: spec.narSize,
        storePath: spec.storePath,
        narInfo: spec.narInfo,
      },
      nar,
    );
    if (!stored)
      log.debug({ storePath: spec.storePath, size: spec.narSize }, "NAR too large to cache");
  }

  /** Closes the file for readers once none is left and the download is over. */
  async closeReader(): Promise<void> {
    if (this.readers > 0 || this.state === "running") return;
    const handle = this.readHandle;
    this.readHandle = undefined;
    await handle?.close();
  }
}

/**
 * Writes `data` (perhaps a view into a slab) to `out`. A `ServerResponse`
 * is done with it once the write's callback ran: the slab is referenced
 * until then. Any other stream may keep it (a test's collector, a
 * transform): it gets a copy.
 */
function writeChunk(out: Writable, data: Buffer): boolean {
  if (!peerSlabs.owns(data)) return out.write(data);
  if (!(out instanceof ServerResponse)) return out.write(Buffer.from(data));
  peerSlabs.ref(data);
  return out.write(data, () => {
    peerSlabs.unref(data);
  });
}

/**
 * Sends `length` bytes of `handle` from `position` to `out` and ends it,
 * read into pooled slabs (no new buffer per read), one read ahead of the
 * socket at most.
 */
export async function sendFileRange(
  handle: FileHandle,
  out: Writable,
  position: number,
  length: number,
): Promise<void> {
  try {
    await sendSlabs(handle, out, position, length);
  } catch (err) {
    // As a stream pipeline would: the response is cut, not left hanging.
    out.destroy(asError(err));
    throw err;
  }
}

async function sendSlabs(
  handle: FileHandle,
  out: Writable,
  position: number,
  length: number,
): Promise<void> {
  let at = position;
  const end = position + length;
  while (at < end) {
    if (out.destroyed) throw new Error("the client went away");
    const region = peerSlabs.region(Math.min(READ_CHUNK, end - at));
    let more: boolean;
    try {
      const { bytesRead } = await handle.read(region, 0, region.length, at);
      if (bytesRead <= 0) throw new Error(`the file ended at byte ${at}, before ${end}`);
      at += bytesRead;
      more = writeChunk(out, region.subarray(0, bytesRead));
    } finally {
      peerSlabs.unref(region);
    }
    if (!more) await drained(out);
  }
  out.end();
}

/** Streams `fetch` (or `range` of it) into `out` as its bytes arrive; see the module comment. */
async function sendTo(
  fetch: Download,
  out: Writable,
  range: ByteRange | undefined,
  cacheMaxBytes: number,
): Promise<void> {
  const size = fetch.spec.narSize;
  const end = range === undefined ? size : range.start + range.length;
  let position = range?.start ?? 0;
  // Counted as a reader before the first await: the file stays open for us.
  fetch.readers += 1;
  try {
    await fetch.opened;
    while (position < end) {
      if (fetch.state === "failed") {
        throw asError(fetch.error ?? fetchFailure(fetch.spec, "the download failed"));
      }
      if (out.destroyed) throw new Error("the client went away");
      // The response's last byte waits for the whole NAR to verify.
      const limit = fetch.state === "verified" ? end : Math.min(fetch.received, end - 1);
      let data = position < limit ? fromMemory(fetch.memory, position, limit) : undefined;
      if (data === undefined && position < Math.min(limit, fetch.written)) {
        const handle = fetch.readHandle;
        if (handle === undefined) throw fetchFailure(fetch.spec, "the download file is gone");
        const length = Math.min(READ_CHUNK, Math.min(limit, fetch.written) - position);
        const buffer = Buffer.allocUnsafe(length);
        const at = (fetch.temp?.offset ?? 0) + position;
        const { bytesRead } = await handle.read(buffer, 0, length, at);
        if (bytesRead <= 0) throw fetchFailure(fetch.spec, "the temporary file is short");
        data = bytesRead === length ? buffer : buffer.subarray(0, bytesRead);
      }
      if (data === undefined) {
        await changed(fetch);
        continue;
      }
      // Everything else already in memory goes in the same write (one writev).
      out.cork();
      let more = true;
      while (data !== undefined) {
        position += data.length;
        more = writeChunk(out, data);
        if (!more || position >= limit) break;
        data = fromMemory(fetch.memory, position, limit);
      }
      out.uncork();
      if (!more) await drained(out);
    }
    out.end();
  } finally {
    fetch.readers -= 1;
    fetch.releaseIfIdle();
    if (fetch.readers === 0 && fetch.state === "running" && fetch.spec.narSize > cacheMaxBytes) {
      // Nobody is waiting and it will not be cached: stop downloading.
      fetch.controller.abort();
    }
    await fetch.closeReader();
  }
}

export function createNarFetcher(options: {
  cache: NarCache;
  log: Logger;
  metrics?: P2pMetrics | undefined;
  /** Defaults: `MEMORY_NAR_BYTES`, `MEMORY_BUDGET`. */
  memoryNarBytes?: number;
  memoryBudget?: number;
  /** The minimum rate of a provider (none by default). */
  minRate?: MinRate | undefined;
}): NarFetcher {
  return new Fetcher(
    options,
    options.memoryNarBytes ?? MEMORY_NAR_BYTES,
    options.memoryBudget ?? MEMORY_BUDGET,
  );
}

/** The downloads in flight, by NAR, within one memory budget. */
class Fetcher implements NarFetcher {
  private readonly inFlight = new Map<string, Download>();
  private memoryInUse = 0;

  constructor(
    private readonly env: FetcherEnv,
    private readonly memoryNarBytes: number,
    private readonly memoryBudget: number,
  ) {}

  get active(): number {
    return this.inFlight.size;
  }

  async stream(spec: FetchSpec, out: Writable, range: ByteRange | undefined): Promise<void> {
    const { fetch, started } = this.join(spec);
    // A client's request that starts a download; a read-ahead one is no request.
    if (started) this.env.metrics?.cacheMiss();
    await sendTo(fetch, out, range, this.env.cache.maxBytes);
  }

  async prefetch(spec: FetchSpec): Promise<boolean> {
    const { cache } = this.env;
    // Only what the cache will keep (otherwise the bytes would be thrown away) and does not hold.
    if (spec.narSize + spec.narInfo.length > cache.maxBytes) return false;
    if (cache.get(spec.hashPart)?.narHash === spec.narHash) return false;
    const { fetch, started } = this.join(spec);
    if (started) await fetch.done;
    return started;
  }

  async flowing(spec: FetchSpec): Promise<void> {
    const { fetch, started } = this.join(spec);
    if (started) this.env.metrics?.cacheMiss();
    while (fetch.state === "running" && fetch.received === 0) await changed(fetch);
    if (fetch.state === "failed") {
      throw asError(fetch.error ?? fetchFailure(spec, "the download failed"));
    }
  }

  async abortAll(): Promise<void> {
    const all = [...this.inFlight.values()];
    for (const fetch of all) fetch.controller.abort();
    await Promise.all(all.map((f) => f.done));
  }

  /** The download of `spec` in flight, or a new one. */
  private join(spec: FetchSpec): { fetch: Download; started: boolean } {
    const key = `${spec.hashPart}-${spec.narHash}`;
    const known = this.inFlight.get(key);
    // A failed download is forgotten as it fails; never join one that has.
    if (known !== undefined && known.state !== "failed") return { fetch: known, started: false };
    const fetch = this.start(spec, key);
    this.inFlight.set(key, fetch);
    this.env.metrics?.downloads(this.inFlight.size);
    return { fetch, started: true };
  }

  private start(spec: FetchSpec, key: string): Download {
    const inMemory =
      spec.narSize <= this.memoryNarBytes && this.memoryInUse + spec.narSize <= this.memoryBudget;
    if (inMemory) this.memoryInUse += spec.narSize;
    const fetch = new Download(spec, inMemory, this.env);
    fetch.done = fetch
      .run()
      .then(
        () => this.verified(fetch),
        (err: unknown) => this.failed(key, fetch, err),
      )
      .catch((err: unknown) => {
        const fields = { storePath: spec.storePath, ...errorFields(err) };
        this.env.log.error(fields, "NAR cache: store failed");
      })
      .finally(() => {
        // The chunks go with the last client still reading them.
        if (inMemory) this.memoryInUse -= spec.narSize;
        this.forget(key, fetch);
        fetch.finished = true;
        fetch.releaseIfIdle();
        void fetch.closeReader().catch(() => undefined);
      });
    return fetch;
  }

  private async verified(fetch: Download): Promise<void> {
    // Verified: clients get their last bytes now; the cache write follows.
    fetch.state = "verified";
    wake(fetch);
    await fetch.keep().catch(async (err: unknown) => {
      if (fetch.temp !== undefined) await this.env.cache.discard(fetch.temp);
      throw err;
    });
  }

  private async failed(key: string, fetch: Download, err: unknown): Promise<void> {
    const { log, metrics, cache } = this.env;
    fetch.state = "failed";
    fetch.error = err;
    // A request arriving from now on starts a new download, not this failed one.
    this.forget(key, fetch);
    wake(fetch);
    const mismatch = err instanceof OgygiaError && err.code === "ERR_OGYGIA_NIX_NAR";
    metrics?.fetchFailed(mismatch ? "mismatch" : "providers");
    if (!fetch.controller.signal.aborted) {
      log.warn(
        { storePath: fetch.spec.storePath, ...errorFields(err) },
        mismatch
          ? "NAR from peers did not verify: transfer cut, nothing cached"
          : "NAR download through peers failed",
      );
    }
    if (fetch.temp !== undefined) await cache.discard(fetch.temp);
  }

  private forget(key: string, fetch: Download): void {
    if (this.inFlight.get(key) !== fetch) return;
    this.inFlight.delete(key);
    this.env.metrics?.downloads(this.inFlight.size);
  }
}
