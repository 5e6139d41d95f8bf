/**
 * A NAR body from a peer read straight into pooled slabs (`slabs.ts`): one
 * `GET` over its own plain-HTTP connection (`Connection: close`), the
 * socket reading into slab regions (`onread`), each chunk handed to the
 * consumer synchronously as it is read: no buffer allocated, no promise and
 * no stream event per chunk. Only what a NAR download needs: a
 * `Content-Length` body (what irisd sends); anything else is a failure of
 * the peer, and the download goes on from the next one.
 *
 * Timeouts as in `peer-http.ts` (which calls this): connecting `connectTimeoutMs`, the
 * response head `timeoutMs`, then `bodyIdleMs` without a byte (not counted
 * while the consumer paused the body).
 */

import type { IncomingHttpHeaders } from "node:http";
import net from "node:net";

import { OgygiaError } from "../../core/index.js";
import type { PeerBase } from "./peer-http.js";
import type { Slabs } from "./slabs.js";

/** Largest response head accepted. */
const MAX_HEAD_BYTES = 32 * 1024;
/** Room for the response head in the first read. */
const HEAD_ROOM = 4096;
/** Most bytes one socket read asks for. */
const READ_BYTES = 256 * 1024;
/** A region with less room left than this is left for a fresh one. */
const MIN_READ_BYTES = 16 * 1024;
/** Handed to a socket that reads no more. */
const SCRATCH = Buffer.alloc(64);

/** Receives a pooled body's chunks. */
export interface BodySink {
  /**
   * One chunk, a view into a slab valid during this call only: keep it
   * past the call only with a reference (`Slabs.ref`).
   */
  chunk(data: Buffer): void;
  /** Called once: the body is complete (no error) or failed. */
  end(err?: Error): void;
}

/** A body delivered by calls (`start`) rather than as a stream. */
export interface PooledBody extends AsyncIterable<Buffer> {
  readonly pooled: true;
  /** Body bytes delivered so far. */
  readonly received: number;
  /** Called once when the body ends, before the sink hears it (for the peer's bookkeeping). */
  onEnd: ((received: number, err: Error | undefined) => void) | undefined;
  /** Starts delivering to `sink` (once). */
  start(sink: BodySink): void;
  pause(): void;
  resume(): void;
  /** Stops reading; the sink's `end` gets `err` (or a generic error) unless it ended. */
  destroy(err?: Error): void;
}

export interface PooledResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: PooledBody;
  /** Throws the body away (closes the connection). */
  discard(): void;
  readBody(limit: number): Promise<Buffer>;
}

export interface PooledGetOptions {
  path: string;
  headers: Record<string, string>;
  /** Time for the response head. */
  timeoutMs: number;
  /** The longest pause between two body reads. */
  bodyIdleMs: number;
  signal?: AbortSignal | undefined;
  /** Body bytes expected: sizes the read regions (a small NAR takes a small one). */
  expectBytes: number;
  slabs: Slabs;
  connectTimeoutMs: number;
  /** A short reason for a socket error (`describeFailure`). */
  describe(err: unknown): string;
}

export function isPooledBody(body: unknown): body is PooledBody {
  return (body as { pooled?: unknown } | null)?.pooled === true;
}

function peerError(base: PeerBase, what: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD_PEER", `peer ${base.label}: ${what}`, { cause });
}

/** Whether `pooledGet` can reach this peer (plain HTTP). */
export function canPoolGet(base: PeerBase): boolean {
  return base.origin.startsWith("http://");
}

/** `GET <path>` from the peer; resolves with the response head, the body waiting for `start`. */
export function pooledGet(base: PeerBase, options: PooledGetOptions): Promise<PooledResponse> {
  return new Exchange(base, options).run();
}

type Phase = "head" | "waiting" | "body" | "done";

class Exchange implements PooledBody {
  readonly pooled = true;
  received = 0;
  status = 0;
  headers: IncomingHttpHeaders = {};
  onEnd: ((received: number, err: Error | undefined) => void) | undefined;
  private phase: Phase = "head";
  private socket: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private head: Buffer | undefined;
  private contentLength = 0;
  /** The region being read into, and the bytes of it filled. */
  private region: Buffer | undefined;
  private filled = 0;
  /** Body bytes read before `start` (with the head), held (referenced) until then. */
  private held: Buffer[] = [];
  private sink: BodySink | undefined;
  /** An error that came before `start`. */
  private pendingError: Error | undefined;
  private paused = false;
  private settleHead: ((err: Error | undefined) => void) | undefined;
  private readonly onAbort = (): void => {
    const reason: unknown = this.options.signal?.reason;
    this.fail(
      reason instanceof OgygiaError
        ? reason
        : peerError(this.base, `${this.options.path}: aborted`),
    );
  };

  constructor(
    private readonly base: PeerBase,
    private readonly options: PooledGetOptions,
  ) {}

  run(): Promise<PooledResponse> {
    const { base, options } = this;
    return new Promise<PooledResponse>((resolve, reject) => {
      this.settleHead = (err) => {
        this.settleHead = undefined;
        if (err !== undefined) reject(err);
        else resolve(this.response());
      };
      if (options.signal?.aborted === true) {
        this.onAbort();
        return;
      }
      options.signal?.addEventListener("abort", this.onAbort, { once: true });
      const url = new URL(base.origin);
      const lines = [
        `GET ${base.pathPrefix}${options.path} HTTP/1.1`,
        `Host: ${url.host}`,
        "Connection: close",
      ];
      if (base.authorization !== undefined) lines.push(`Authorization: ${base.authorization}`);
      for (const [name, value] of Object.entries(options.headers)) lines.push(`${name}: ${value}`);
      const socket = net.connect({
        host: url.hostname.replace(/^\[|\]$/g, ""),
        port: Number(url.port === "" ? 80 : url.port),
        noDelay: true,
        onread: {
          buffer: () => this.nextBuffer(),
          callback: (n: number, buffer: Uint8Array) => this.onRead(n, buffer as Buffer),
        },
      });
      this.socket = socket;
      this.timer = setTimeout(() => {
        this.fail(peerError(base, `${options.path}: connect timed out`));
      }, options.connectTimeoutMs);
      socket.once("connect", () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => {
          this.fail(peerError(base, `${options.path}: timed out`));
        }, options.timeoutMs);
      });
      socket.on("error", (err) => {
        this.fail(peerError(base, `${options.path}: ${options.describe(err)}`, err));
      });
      socket.on("timeout", () => {
        this.fail(peerError(base, `${options.path}: the body stalled`));
      });
      socket.once("close", () => {
        // The whole body came before `start`: the peer closing is no failure.
        if (this.phase === "waiting" && this.received >= this.contentLength) return;
        this.fail(
          this.phase === "head"
            ? peerError(base, `${options.path}: the connection closed before the response`)
            : peerError(
                base,
                `${options.path}: the body ended after ${this.received} of ${this.contentLength} bytes`,
              ),
        );
      });
      socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    });
  }

  private response(): PooledResponse {
    return {
      status: this.status,
      headers: this.headers,
      body: this,
      discard: () => {
        this.destroy();
      },
      readBody: (limit) => this.readBody(limit),
    };
  }

  /** The buffer the next socket read fills: the rest of the region, or a new one. */
  private nextBuffer(): Buffer {
    // Node asks for the next buffer even after the read that ended the exchange.
    if (this.phase === "done") return SCRATCH;
    const region = this.region;
    if (region !== undefined && region.length - this.filled >= MIN_READ_BYTES) {
      return region.subarray(this.filled);
    }
    if (region !== undefined) this.options.slabs.unref(region);
    const left =
      this.phase === "head"
        ? this.options.expectBytes + HEAD_ROOM
        : this.contentLength - this.received;
    this.region = this.options.slabs.region(Math.min(READ_BYTES, Math.max(MIN_READ_BYTES, left)));
    this.filled = 0;
    return this.region;
  }

  /** One socket read of `n` bytes into `buffer` (from `nextBuffer`); false stops reading. */
  private onRead(n: number, buffer: Buffer): boolean {
    this.filled += n;
    const data = buffer.subarray(0, n);
    if (this.phase === "head") return this.onHead(data);
    if (this.phase === "waiting") {
      this.hold(data);
      return false;
    }
    if (this.phase !== "body") return false;
    return this.deliver(data);
  }

  private onHead(data: Buffer): boolean {
    const { base, options } = this;
    const head = this.head === undefined ? Buffer.from(data) : Buffer.concat([this.head, data]);
    const end = head.indexOf("\r\n\r\n");
    if (end < 0) {
      if (head.length > MAX_HEAD_BYTES) {
        this.fail(peerError(base, `${options.path}: the response head is too long`));
        return false;
      }
      this.head = head;
      return true;
    }
    this.head = undefined;
    const lines = head.toString("latin1", 0, end).split("\r\n");
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "");
    if (status === null) {
      this.fail(peerError(base, `${options.path}: not an HTTP/1.1 response`));
      return false;
    }
    this.status = Number(status[1]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      this.headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    const length = this.headers["content-length"];
    const ok = this.status >= 200 && this.status < 300;
    if (ok && (this.headers["transfer-encoding"] !== undefined || !/^\d+$/.test(length ?? ""))) {
      this.fail(peerError(base, `${options.path}: a body without Content-Length`));
      return false;
    }
    this.contentLength = ok ? Number(length) : 0;
    // Body bytes that came with the head wait (referenced) for `start`.
    const bodyStart = end + 4 - (head.length - data.length);
    this.phase = "waiting";
    if (bodyStart < data.length && ok) this.hold(data.subarray(bodyStart));
    this.settleHead?.(undefined);
    if (!ok) return false;
    if (this.received >= this.contentLength) return false;
    this.socket?.setTimeout(options.bodyIdleMs);
    // Nothing more is read until the consumer starts.
    this.paused = true;
    return false;
  }

  /** Keeps body bytes read before `start` (at most the body's length). */
  private hold(data: Buffer): void {
    const rest = this.contentLength - this.received;
    if (rest <= 0) return;
    const chunk = data.length > rest ? data.subarray(0, rest) : data;
    this.options.slabs.ref(chunk);
    this.held.push(chunk);
    this.received += chunk.length;
  }

  private deliver(data: Buffer): boolean {
    const rest = this.contentLength - this.received;
    const chunk = data.length > rest ? data.subarray(0, rest) : data;
    this.received += chunk.length;
    this.sink?.chunk(chunk);
    // The sink may have destroyed the body.
    if (!this.delivering()) return false;
    if (this.received >= this.contentLength) {
      this.complete();
      return false;
    }
    return !this.paused;
  }

  start(sink: BodySink): void {
    if (this.sink !== undefined) throw new Error("pooled body: started twice");
    this.sink = sink;
    if (this.pendingError !== undefined) {
      this.endSink(this.pendingError);
      return;
    }
    if (this.phase !== "waiting") return;
    this.phase = "body";
    const held = this.held;
    this.held = [];
    for (const chunk of held) {
      if (this.delivering()) sink.chunk(chunk);
      this.options.slabs.unref(chunk);
    }
    if (!this.delivering()) return;
    if (this.received >= this.contentLength) {
      this.complete();
      return;
    }
    if (this.paused) this.resume();
  }

  /** Read through a call: a sink's call may end the body, which narrowing cannot see. */
  private delivering(): boolean {
    return this.phase === "body";
  }

  pause(): void {
    if (this.paused || this.phase !== "body") return;
    this.paused = true;
    // Our pause is not the peer's stall.
    this.socket?.setTimeout(0);
    this.socket?.pause();
  }

  resume(): void {
    if (this.phase !== "body") return;
    this.paused = false;
    this.socket?.setTimeout(this.options.bodyIdleMs);
    this.socket?.resume();
  }

  destroy(err?: Error): void {
    this.fail(err ?? peerError(this.base, `${this.options.path}: the body was thrown away`));
  }

  private complete(): void {
    this.phase = "done";
    this.release();
    this.onEnd?.(this.received, undefined);
    this.sink?.end();
  }

  private fail(err: Error): void {
    if (this.phase === "done") return;
    const head = this.phase === "head";
    this.phase = "done";
    this.release();
    if (head) {
      this.settleHead?.(err);
      return;
    }
    this.onEnd?.(this.received, err);
    if (this.sink === undefined) this.pendingError = err;
    else this.endSink(err);
  }

  private endSink(err: Error): void {
    const sink = this.sink;
    this.pendingError = undefined;
    sink?.end(err);
  }

  private release(): void {
    clearTimeout(this.timer);
    this.options.signal?.removeEventListener("abort", this.onAbort);
    this.socket?.destroy();
    for (const chunk of this.held) this.options.slabs.unref(chunk);
    this.held = [];
    if (this.region !== undefined) this.options.slabs.unref(this.region);
    this.region = undefined;
  }

  /** Reads the whole body (copied), failing past `limit` bytes. */
  readBody(limit: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.contentLength > limit) {
        this.destroy();
        reject(peerError(this.base, `${this.options.path}: more than ${limit} bytes`));
        return;
      }
      const chunks: Buffer[] = [];
      this.start({
        chunk: (data) => chunks.push(Buffer.from(data)),
        end: (err) => {
          if (err !== undefined) reject(err);
          else resolve(Buffer.concat(chunks));
        },
      });
    });
  }

  /** The body as copied chunks (for consumers that are not slab-aware). */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const queue: Buffer[] = [];
    const state: { ended: boolean; failure: Error | undefined } = {
      ended: false,
      failure: undefined,
    };
    let wakeUp: (() => void) | undefined;
    this.start({
      chunk: (data) => {
        queue.push(Buffer.from(data));
        if (queue.length > 16) this.pause();
        wakeUp?.();
      },
      end: (err) => {
        state.ended = true;
        state.failure = err;
        wakeUp?.();
      },
    });
    try {
      for (;;) {
        const next = queue.shift();
        if (next !== undefined) {
          if (queue.length < 4) this.resume();
          yield next;
          continue;
        }
        if (state.ended) {
          if (state.failure !== undefined) throw state.failure;
          return;
        }
        await new Promise<void>((resolve) => {
          wakeUp = resolve;
        });
        wakeUp = undefined;
      }
    } finally {
      if (!state.ended) this.destroy();
    }
  }
}
