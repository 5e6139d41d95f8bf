/**
 * Downloading a NAR from peers, once, for every client that wants it.
 *
 * Each chunk from the provider is checked as it arrives (`createNarCheck`:
 * SHA-256, size and the NAR's structure, as NarVerifier checks them; plus
 * the content-address check when only the CA vouches for the path) and
 * handed to every client streaming this NAR, so concurrent requests share
 * one download.
 *
 * Where the bytes live meanwhile: a NAR up to `MEMORY_NAR_BYTES` is held in
 * memory (within `MEMORY_BUDGET` for all downloads) and written to the cache
 * only after it verified, so clients wait for the network, never for the
 * cache's disk. A larger one (or one that does not fit the budget) goes to
 * a temporary cache file as it arrives, and the last `RECENT_BYTES` stay in
 * memory too; a client that falls further behind reads from the file.
 *
 * No client ever receives the last byte of its response before the whole
 * NAR verified: a mismatch then cuts every response short (the server
 * destroys the connection), so no client sees a complete-looking wrong
 * body, and nothing is cached.
 *
 * When a provider fails mid-stream (reset, stall, a short body), the
 * download continues from the next provider at the byte reached (`Range`);
 * when no provider is left, the fetch fails and so do the responses. A
 * verified NAR is written out (if held in memory), fsynced (one file at a
 * time) and handed to the cache.
 */

import { createHash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import type { Writable } from "node:stream";

import { OgygiaError } from "../../core/index.js";
import {
  checkNarExpectations,
  createNarParser,
  hashFromDigest,
  type Hash,
} from "../../nix/index.js";
import { errorFields, type IrisLogger } from "../log/index.js";
import { SMALL_NAR_BYTES, type NarCache, type TempEntry } from "./nar-cache.js";
import type { P2pMetrics } from "./metrics.js";
import type { ContentCheck } from "./peer-narinfo.js";
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

  /** Downloads in flight (until their NAR is cached). */
  readonly active: number;
  /** Aborts every download (shutdown). */
  abortAll(): Promise<void>;
}

/** NARs up to this size are downloaded into memory while `MEMORY_BUDGET` allows. */
export const MEMORY_NAR_BYTES = 32 * 1024 * 1024;
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
  buffers: Buffer[];
  bytes: number;
}

interface Fetch {
  readonly spec: FetchSpec;
  state: State;
  error: unknown;
  /** Bytes received and checked so far. */
  received: number;
  /** Bytes on disk so far (file mode). */
  written: number;
  readers: number;
  /** Held in memory until cached (else: a file as it comes). */
  readonly inMemory: boolean;
  memory: Chunks;
  temp: TempEntry | undefined;
  /** For clients behind the memory window (file mode). */
  readHandle: FileHandle | undefined;
  /** Resolves once the temporary file is open (file mode), or at once. */
  opened: Promise<void>;
  done: Promise<void>;
  controller: AbortController;
  waiters: (() => void)[];
  wakeScheduled: boolean;
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

function wake(fetch: Fetch): void {
  const waiters = fetch.waiters;
  fetch.waiters = [];
  for (const resolve of waiters) resolve();
}

/**
 * Wakes the clients once the current burst of socket reads is processed
 * (setImmediate runs after the I/O phase), so each wake hands them every
 * chunk that arrived meanwhile, to send in one write.
 */
function wakeSoon(fetch: Fetch): void {
  if (fetch.wakeScheduled || fetch.waiters.length === 0) return;
  fetch.wakeScheduled = true;
  setImmediate(() => {
    fetch.wakeScheduled = false;
    wake(fetch);
  });
}

function changed(fetch: Fetch): Promise<void> {
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

export function createNarFetcher(options: {
  cache: NarCache;
  log: IrisLogger;
  metrics?: P2pMetrics | undefined;
  /** Defaults: `MEMORY_NAR_BYTES`, `MEMORY_BUDGET`. */
  memoryNarBytes?: number;
  memoryBudget?: number;
}): NarFetcher {
  const { cache, log, metrics } = options;
  const memoryNarBytes = options.memoryNarBytes ?? MEMORY_NAR_BYTES;
  const memoryBudget = options.memoryBudget ?? MEMORY_BUDGET;
  const inFlight = new Map<string, Fetch>();
  let memoryInUse = 0;

  const closeReader = async (fetch: Fetch): Promise<void> => {
    if (fetch.readers > 0 || fetch.state === "running") return;
    const handle = fetch.readHandle;
    fetch.readHandle = undefined;
    await handle?.close();
  };

  /** Downloads and verifies into memory, or into `fetch.temp` as it comes. */
  const download = async (fetch: Fetch, markOpened: () => void): Promise<void> => {
    const { spec } = fetch;
    const what = spec.storePath;
    if (!fetch.inMemory) {
      try {
        fetch.temp = await cache.createTemp(spec.narInfo);
        fetch.readHandle = await open(fetch.temp.path, "r");
      } finally {
        markOpened();
      }
    } else {
      markOpened();
    }
    const temp =
      fetch.temp?.handle === undefined ? undefined : { ...fetch.temp, handle: fetch.temp.handle };

    // File mode: chunks wait here for the disk; one writer drains them in batches.
    let queued: Buffer[] = [];
    let queuedBytes = 0;
    let writing: Promise<void> | undefined;
    let writeError: unknown;
    const writer = async (file: TempEntry & { handle: FileHandle }): Promise<void> => {
      while (queued.length > 0) {
        const batch = queued;
        queued = [];
        queuedBytes = 0;
        await writeAll(file.handle, batch, file.offset + fetch.written);
        for (const buffer of batch) fetch.written += buffer.length;
        // Chunks on disk may leave memory once the window is full.
        const memory = fetch.memory;
        while (
          memory.bytes > RECENT_BYTES &&
          (memory.offsets[0] ?? 0) + (memory.buffers[0]?.length ?? 0) <= fetch.written
        ) {
          memory.offsets.shift();
          memory.bytes -= memory.buffers.shift()?.length ?? 0;
        }
        wake(fetch);
      }
    };
    const flush = (): Promise<void> => {
      if (temp === undefined || writing !== undefined || queued.length === 0) {
        return writing ?? Promise.resolve();
      }
      writing = writer(temp)
        .catch((err: unknown) => {
          writeError = err;
        })
        .finally(() => {
          writing = undefined;
        });
      return writing;
    };

    const check = createNarCheck({
      what: `${what} from peers`,
      expectedHash: spec.expectedHash,
      expectedSize: spec.narSize,
    });
    /** The bytes are wrong: no other provider can fix that. */
    let badBytes: unknown;
    const fatal = (): unknown => badBytes;

    const accept = (chunk: Buffer): void => {
      try {
        check.write(chunk);
        spec.contentCheck?.write(chunk);
      } catch (err) {
        badBytes = err;
        return;
      }
      fetch.memory.offsets.push(fetch.received);
      fetch.memory.buffers.push(chunk);
      fetch.memory.bytes += chunk.length;
      fetch.received += chunk.length;
      if (temp !== undefined) {
        queued.push(chunk);
        queuedBytes += chunk.length;
        void flush();
      }
      wakeSoon(fetch);
    };

    const tried: NarSource[] = [];
    const contributors: NarSource[] = [];
    try {
      while (fetch.received < spec.narSize && fatal() === undefined) {
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
        if (fetch.received > 0) {
          metrics?.failover();
          log.info(
            { storePath: what, peer: source.label, offset: fetch.received },
            "continuing a NAR download from another peer",
          );
        }
        try {
          const body = await source.open(fetch.received, fetch.controller.signal);
          contributors.push(source);
          for await (const chunk of body) {
            accept(chunk);
            if (fatal() !== undefined) break;
            if (writeError !== undefined) throw asError(writeError);
            if (queuedBytes > WRITE_HIGH_WATER) await flush();
          }
          if (fatal() === undefined && fetch.received < spec.narSize) {
            throw new Error(`the body ended after ${fetch.received} bytes`);
          }
        } catch (err) {
          if (fetch.controller.signal.aborted || writeError !== undefined) throw err;
          if (fatal() !== undefined) break;
          spec.onSourceFailure?.(source, err);
          log.debug({ storePath: what, peer: source.label, ...errorFields(err) }, "source failed");
        }
      }
      const failure = fatal();
      if (failure !== undefined) throw asError(failure);
      check.end();
      spec.contentCheck?.end();
      await flush();
      if (writeError !== undefined) throw asError(writeError);
    } catch (err) {
      await writing;
      await temp?.handle.close().catch(() => undefined);
      const mismatch = err instanceof OgygiaError && err.code === "ERR_OGYGIA_NIX_NAR";
      if (mismatch) spec.onMismatch?.(contributors, err);
      throw err;
    }
  };

  /** After verification: the NAR onto disk (memory mode), fsynced, into the cache. */
  const keep = async (fetch: Fetch): Promise<void> => {
    const { spec } = fetch;
    let temp = fetch.temp;
    if (fetch.inMemory) {
      if (spec.narSize + spec.narInfo.length > cache.maxBytes) return;
      temp = await cache.writeTemp(spec.narInfo, fetch.memory.buffers);
      fetch.temp = temp;
    } else if (temp !== undefined) {
      await cache.finishTemp(temp);
    }
    if (temp === undefined) return;
    // A small NAR in memory stays there too: the cache serves it without reading the file.
    const nar =
      fetch.inMemory && spec.narSize <= SMALL_NAR_BYTES
        ? Buffer.concat(fetch.memory.buffers, spec.narSize)
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
  };

  const forget = (key: string, fetch: Fetch): void => {
    if (inFlight.get(key) !== fetch) return;
    inFlight.delete(key);
    metrics?.downloads(inFlight.size);
  };

  const start = (spec: FetchSpec, key: string): Fetch => {
    let markOpened = (): void => undefined;
    const inMemory = spec.narSize <= memoryNarBytes && memoryInUse + spec.narSize <= memoryBudget;
    if (inMemory) memoryInUse += spec.narSize;
    const fetch: Fetch = {
      spec,
      state: "running",
      error: undefined,
      received: 0,
      written: 0,
      readers: 0,
      inMemory,
      memory: { offsets: [], buffers: [], bytes: 0 },
      temp: undefined,
      readHandle: undefined,
      opened: new Promise<void>((resolve) => {
        markOpened = resolve;
      }),
      done: Promise.resolve(),
      controller: new AbortController(),
      waiters: [],
      wakeScheduled: false,
    };
    fetch.done = download(fetch, markOpened)
      .then(
        async () => {
          // Verified: clients get their last bytes now; the cache write follows.
          fetch.state = "verified";
          wake(fetch);
          await keep(fetch).catch(async (err: unknown) => {
            if (fetch.temp !== undefined) await cache.discard(fetch.temp);
            throw err;
          });
        },
        async (err: unknown) => {
          fetch.state = "failed";
          fetch.error = err;
          // A request arriving from now on starts a new download, not this failed one.
          forget(key, fetch);
          wake(fetch);
          const mismatch = err instanceof OgygiaError && err.code === "ERR_OGYGIA_NIX_NAR";
          metrics?.fetchFailed(mismatch ? "mismatch" : "providers");
          if (!fetch.controller.signal.aborted) {
            log.warn(
              { storePath: spec.storePath, ...errorFields(err) },
              mismatch
                ? "NAR from peers did not verify: transfer cut, nothing cached"
                : "NAR download through peers failed",
            );
          }
          if (fetch.temp !== undefined) await cache.discard(fetch.temp);
        },
      )
      .catch((err: unknown) => {
        log.error({ storePath: spec.storePath, ...errorFields(err) }, "NAR cache: store failed");
      })
      .finally(() => {
        // The chunks go with the last client still reading them.
        if (inMemory) memoryInUse -= spec.narSize;
        forget(key, fetch);
        void closeReader(fetch).catch(() => undefined);
      });
    return fetch;
  };

  const stream = async (
    fetch: Fetch,
    out: Writable,
    range: ByteRange | undefined,
  ): Promise<void> => {
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
          const { bytesRead } = await handle.read(
            buffer,
            0,
            length,
            (fetch.temp?.offset ?? 0) + position,
          );
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
          more = out.write(data);
          if (!more || position >= limit) break;
          data = fromMemory(fetch.memory, position, limit);
        }
        out.uncork();
        if (!more) await drained(out);
      }
      out.end();
    } finally {
      fetch.readers -= 1;
      if (fetch.readers === 0 && fetch.state === "running" && fetch.spec.narSize > cache.maxBytes) {
        // Nobody is waiting and it will not be cached: stop downloading.
        fetch.controller.abort();
      }
      await closeReader(fetch);
    }
  };

  /** The download of `spec` in flight, or a new one. */
  const join = (spec: FetchSpec): { fetch: Fetch; started: boolean } => {
    const key = `${spec.hashPart}-${spec.narHash}`;
    const known = inFlight.get(key);
    // A failed download is forgotten as it fails; never join one that has.
    if (known !== undefined && known.state !== "failed") return { fetch: known, started: false };
    const fetch = start(spec, key);
    inFlight.set(key, fetch);
    metrics?.downloads(inFlight.size);
    return { fetch, started: true };
  };

  return {
    get active() {
      return inFlight.size;
    },
    async stream(spec, out, range) {
      const { fetch, started } = join(spec);
      // A client's request that starts a download; a read-ahead one is no request.
      if (started) metrics?.cacheMiss();
      await stream(fetch, out, range);
    },
    async prefetch(spec) {
      // Only what the cache will keep (otherwise the bytes would be thrown away) and does not hold.
      if (spec.narSize + spec.narInfo.length > cache.maxBytes) return false;
      if (cache.get(spec.hashPart)?.narHash === spec.narHash) return false;
      const { fetch, started } = join(spec);
      if (started) await fetch.done;
      return started;
    },
    async abortAll() {
      const all = [...inFlight.values()];
      for (const fetch of all) fetch.controller.abort();
      await Promise.all(all.map((f) => f.done));
    },
  };
}
