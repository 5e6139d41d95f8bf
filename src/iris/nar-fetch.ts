/**
 * Downloading a NAR from peers, once, for every client that wants it.
 *
 * A fetch writes the NAR into a temporary file in the cache folder while
 * hashing it (`NarVerifier`: SHA-256 and size against the verified narinfo,
 * plus the NAR's structure; and the content-address check when only the CA
 * vouches for the path). Clients stream from that file as it grows: the
 * first one right behind the download, later ones from the start (or their
 * range) and then behind it. Concurrent requests for one NAR thus fetch it
 * once.
 *
 * No client ever receives the last byte of its response before the whole
 * NAR verified: a mismatch then cuts every response short (the server
 * destroys the connection), so no client sees a complete-looking wrong
 * body, and nothing is cached.
 *
 * When a provider fails mid-stream (reset, stall, a short body), the
 * download continues from the next provider at the byte reached (`Range`);
 * when no provider is left, the fetch fails and so do the responses. A
 * verified NAR is handed to the cache (renamed into place, or removed when
 * it does not fit).
 */

import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import { Writable, type Writable as WritableType } from "node:stream";
import { pipeline } from "node:stream/promises";

import { OgygiaError } from "../core/index.js";
import { createNarVerifier, type Hash } from "../nix/index.js";
import { errorFields, type IrisLogger } from "./log.js";
import type { NarCache, TempFile } from "./nar-cache.js";
import type { P2pMetrics } from "./p2p-metrics.js";
import type { ContentCheck } from "./peer-narinfo.js";
import type { ByteRange } from "./resolve.js";

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
  stream(spec: FetchSpec, out: WritableType, range: ByteRange | undefined): Promise<void>;
  /** Downloads in flight. */
  readonly active: number;
  /** Aborts every download (shutdown). */
  abortAll(): Promise<void>;
}

/** Bytes read from the temporary file per write to a client. */
const READ_CHUNK = 1024 * 1024;

type State = "running" | "verified" | "failed";

interface Fetch {
  readonly spec: FetchSpec;
  state: State;
  error: unknown;
  /** Bytes written to the temporary file so far. */
  written: number;
  readers: number;
  readHandle: FileHandle | undefined;
  temp: TempFile | undefined;
  /** Resolves when the temporary file exists and `readHandle` is open (or the fetch failed). */
  opened: Promise<void>;
  done: Promise<void>;
  controller: AbortController;
  waiters: (() => void)[];
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

function changed(fetch: Fetch): Promise<void> {
  return new Promise((resolve) => fetch.waiters.push(resolve));
}

/** Resolves once `out` may take more, rejects when it closed first. */
function drained(out: WritableType): Promise<void> {
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

export function createNarFetcher(options: {
  cache: NarCache;
  log: IrisLogger;
  metrics?: P2pMetrics | undefined;
}): NarFetcher {
  const { cache, log, metrics } = options;
  const inFlight = new Map<string, Fetch>();

  const closeReader = async (fetch: Fetch): Promise<void> => {
    if (fetch.readers > 0 || fetch.state === "running") return;
    const handle = fetch.readHandle;
    fetch.readHandle = undefined;
    await handle?.close();
  };

  const run = async (fetch: Fetch, markOpened: () => void): Promise<void> => {
    const { spec } = fetch;
    const what = spec.storePath;
    let writeHandle: FileHandle | undefined;
    try {
      fetch.temp = await cache.createTemp();
      writeHandle = await open(fetch.temp.path, "r+");
      fetch.readHandle = await open(fetch.temp.path, "r");
    } finally {
      markOpened();
    }
    const out = writeHandle;
    const toFile = new Writable({
      highWaterMark: 4 * 1024 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        out.write(chunk, 0, chunk.length, fetch.written).then(
          () => {
            fetch.written += chunk.length;
            wake(fetch);
            callback();
          },
          (err: unknown) => {
            callback(err as Error);
          },
        );
      },
      final(callback) {
        out.sync().then(
          () => {
            callback();
          },
          (err: unknown) => {
            callback(err as Error);
          },
        );
      },
    });
    const verifier = createNarVerifier({
      what: `${what} from peers`,
      expectedHash: spec.expectedHash,
      expectedSize: spec.narSize,
    });
    const written = pipeline(verifier, toFile);
    // A verifier error surfaces through `written`; keep it from being unhandled meanwhile.
    written.catch(() => undefined);

    const tried: NarSource[] = [];
    const contributors: NarSource[] = [];
    /** Bytes handed to the verifier: where the next provider continues. */
    let fed = 0;
    /** The bytes are wrong (verifier or content check): no provider can fix that. */
    const fatal = (): unknown => verifier.errored ?? contentError;
    let contentError: unknown;
    try {
      while (fed < spec.narSize && fatal() === undefined) {
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
        if (fed > 0) {
          metrics?.failover();
          log.info(
            { storePath: what, peer: source.label, offset: fed },
            "continuing a NAR download from another peer",
          );
        }
        try {
          const body = await source.open(fed, fetch.controller.signal);
          contributors.push(source);
          for await (const chunk of body) {
            if (fatal() !== undefined) break;
            try {
              spec.contentCheck?.write(chunk);
            } catch (err) {
              contentError = err;
              break;
            }
            fed += chunk.length;
            if (!verifier.write(chunk)) await drained(verifier);
          }
          if (fatal() === undefined && fed < spec.narSize) {
            throw new Error(`the body ended after ${fed} bytes`);
          }
        } catch (err) {
          if (fetch.controller.signal.aborted) throw err;
          if (fatal() !== undefined) break;
          spec.onSourceFailure?.(source, err);
          log.debug({ storePath: what, peer: source.label, ...errorFields(err) }, "source failed");
        }
      }
      const failure = fatal();
      if (failure !== undefined) throw asError(failure);
      verifier.end();
      await written;
      spec.contentCheck?.end();
    } catch (err) {
      verifier.destroy();
      await written.catch(() => undefined);
      await writeHandle.close();
      const mismatch = err instanceof OgygiaError && err.code === "ERR_OGYGIA_NIX_NAR";
      if (mismatch) spec.onMismatch?.(contributors, err);
      throw err;
    }
    await writeHandle.close();
  };

  const start = (spec: FetchSpec, key: string): Fetch => {
    let markOpened = (): void => undefined;
    const fetch: Fetch = {
      spec,
      state: "running",
      error: undefined,
      written: 0,
      readers: 0,
      readHandle: undefined,
      temp: undefined,
      opened: new Promise<void>((resolve) => {
        markOpened = resolve;
      }),
      done: Promise.resolve(),
      controller: new AbortController(),
      waiters: [],
    };
    fetch.done = run(fetch, markOpened)
      .then(
        async () => {
          fetch.state = "verified";
          wake(fetch);
          const temp = fetch.temp;
          if (temp === undefined) return;
          const stored = await cache.store(temp, {
            hashPart: spec.hashPart,
            narHash: spec.narHash,
            size: spec.narSize,
            storePath: spec.storePath,
            narInfo: spec.narInfo,
          });
          if (!stored) {
            log.debug({ storePath: spec.storePath, size: spec.narSize }, "NAR too large to cache");
          }
        },
        async (err: unknown) => {
          fetch.state = "failed";
          fetch.error = err;
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
        inFlight.delete(key);
        void closeReader(fetch).catch(() => undefined);
      });
    return fetch;
  };

  const stream = async (
    fetch: Fetch,
    out: WritableType,
    range: ByteRange | undefined,
  ): Promise<void> => {
    const size = fetch.spec.narSize;
    const begin = range?.start ?? 0;
    const end = range === undefined ? size : range.start + range.length;
    let position = begin;
    // Counted as a reader before the first await: the file stays open for us.
    fetch.readers += 1;
    try {
      await fetch.opened;
      const handle = fetch.readHandle;
      if (handle === undefined) {
        throw asError(fetch.error ?? fetchFailure(fetch.spec, "the download could not start"));
      }
      while (position < end) {
        if (fetch.state === "failed") {
          throw asError(fetch.error ?? fetchFailure(fetch.spec, "the download failed"));
        }
        if (out.destroyed) throw new Error("the client went away");
        // The response's last byte waits for the whole NAR to verify.
        const limit = fetch.state === "verified" ? end : Math.min(fetch.written, end - 1);
        if (position >= limit) {
          await changed(fetch);
          continue;
        }
        const length = Math.min(READ_CHUNK, limit - position);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buffer, 0, length, position);
        if (bytesRead <= 0) throw fetchFailure(fetch.spec, "the temporary file is short");
        position += bytesRead;
        if (!out.write(bytesRead === length ? buffer : buffer.subarray(0, bytesRead))) {
          await drained(out);
        }
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

  return {
    get active() {
      return inFlight.size;
    },
    async stream(spec, out, range) {
      const key = `${spec.hashPart}-${spec.narHash}`;
      let fetch = inFlight.get(key);
      if (fetch === undefined) {
        metrics?.cacheMiss();
        fetch = start(spec, key);
        inFlight.set(key, fetch);
      }
      await stream(fetch, out, range);
    },
    async abortAll() {
      const all = [...inFlight.values()];
      for (const fetch of all) fetch.controller.abort();
      await Promise.all(all.map((f) => f.done));
    },
  };
}
