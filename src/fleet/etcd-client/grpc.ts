/**
 * gRPC over `node:http2`, as much of it as etcd's API needs: unary calls and
 * bidirectional streams of length-prefixed messages (no compression), the
 * `grpc-timeout` header, `grpc-status`/`grpc-message` trailers, TLS, and a
 * list of endpoints tried in turn.
 */

import http2 from "node:http2";

/** gRPC status codes this client reads or produces. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  FAILED_PRECONDITION: 9,
  OUT_OF_RANGE: 11,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** A call that ended with a gRPC status other than OK (or never reached a server). */
export class GrpcError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(details, options);
    this.name = "GrpcError";
  }
}

/** TLS material for `https://` endpoints (PEM). Without `ca`, the system's CAs are trusted. */
export interface TlsOptions {
  ca?: string | Buffer | undefined;
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
}

export interface ChannelOptions {
  /** `http://host:port` or `https://host:port`, tried in order. */
  endpoints: readonly string[];
  tls?: TlsOptions | undefined;
}

/** Per-call settings: an absolute deadline (ms since the epoch) and extra headers. */
export interface CallOptions {
  deadline: number;
  metadata?: Readonly<Record<string, string>> | undefined;
}

/** Flow-control window: a 10,000-host range (3 MB) should not wait on window updates. */
const WINDOW_BYTES = 16 * 1024 * 1024;
/** No endpoint gets less than this to connect, however many there are. */
const MIN_CONNECT_MS = 250;

/** Prefixes `message` with gRPC's 5-byte header (uncompressed, big-endian length). */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** Splits a byte stream into gRPC messages, whatever the chunk boundaries. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Adds a chunk; returns the messages it completed (views, valid until the caller drops them). */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    while (this.buffered >= 5) {
      const head = this.peek(5);
      if (head[0] !== 0) {
        throw new GrpcError(GrpcCode.INTERNAL, "a compressed message arrived, none was asked for");
      }
      const length = head.readUInt32BE(1);
      if (this.buffered < 5 + length) break;
      const all = this.take(5 + length);
      out.push(all.subarray(5));
    }
    return out;
  }

  /** Bytes received that do not yet make a whole message. */
  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first;
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private take(n: number): Buffer {
    let first = this.chunks[0];
    if (!first || first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    this.buffered -= n;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    this.chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }
}

/** The gRPC status a response ended with, from its trailers (or trailers-only headers). */
function statusOf(headers: http2.IncomingHttpHeaders): GrpcError | null | undefined {
  const raw = headers["grpc-status"];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  if (code === GrpcCode.OK) return null;
  const message = headers["grpc-message"];
  let details = typeof message === "string" ? message : `gRPC status ${code}`;
  try {
    details = decodeURIComponent(details);
  } catch {
    // Not percent-encoded after all: keep it as it came.
  }
  return new GrpcError(code, details);
}

/** `grpc-timeout` for the time left until `deadline`. */
function timeoutHeader(deadline: number): string {
  return `${Math.max(1, Math.ceil(deadline - Date.now()))}m`;
}

/** A connection failure worded with the endpoint it concerns. */
function unavailable(endpoint: string, what: string, cause?: unknown): GrpcError {
  return new GrpcError(GrpcCode.UNAVAILABLE, `${endpoint}: ${what}`, { cause });
}

/**
 * One HTTP/2 connection at a time to the first endpoint that answers; when
 * it drops, the next call connects again, starting from the endpoint that
 * worked last. A hung endpoint gets only its share of the call's time.
 */
export class Channel {
  private session: http2.ClientHttp2Session | undefined;
  private connecting: Promise<http2.ClientHttp2Session> | undefined;
  private next = 0;
  private closed = false;

  constructor(private readonly options: ChannelOptions) {
    if (options.endpoints.length === 0) throw new Error("an etcd client needs an endpoint");
  }

  /** An open session, connecting if need be before `deadline`. */
  connect(deadline: number): Promise<http2.ClientHttp2Session> {
    if (this.closed) {
      return Promise.reject(new GrpcError(GrpcCode.CANCELLED, "the client is closed"));
    }
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return Promise.resolve(current);
    this.connecting ??= this.connectAny(deadline).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectAny(deadline: number): Promise<http2.ClientHttp2Session> {
    const { endpoints } = this.options;
    const failures: string[] = [];
    let lastError: unknown;
    for (let i = 0; i < endpoints.length; i++) {
      const index = (this.next + i) % endpoints.length;
      const endpoint = endpoints[index] ?? "";
      const left = deadline - Date.now();
      if (left <= 0) break;
      // An even share of what is left for each endpoint still to try.
      const share = Math.max(MIN_CONNECT_MS, left / (endpoints.length - i));
      try {
        const session = await this.connectOne(endpoint, Math.min(left, share));
        if (this.closed) {
          session.destroy();
          throw new GrpcError(GrpcCode.CANCELLED, "the client is closed");
        }
        this.next = index;
        this.session = session;
        const forget = (): void => {
          if (this.session === session) this.session = undefined;
        };
        session.on("close", forget);
        session.on("goaway", forget);
        session.on("error", forget);
        return session;
      } catch (err) {
        if (err instanceof GrpcError && err.code === GrpcCode.CANCELLED) throw err;
        lastError = err;
        failures.push(err instanceof Error ? err.message : String(err));
      }
    }
    if (failures.length === 0) failures.push("no time left to connect");
    throw new GrpcError(GrpcCode.UNAVAILABLE, failures.join("; "), { cause: lastError });
  }

  private connectOne(endpoint: string, timeoutMs: number): Promise<http2.ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      let url: URL;
      try {
        url = new URL(endpoint);
      } catch (err) {
        reject(unavailable(endpoint, "not a URL", err));
        return;
      }
      const secure = url.protocol === "https:";
      const tls = this.options.tls;
      const session = http2.connect(url.origin, {
        settings: { initialWindowSize: WINDOW_BYTES },
        ...(secure && tls && { ca: tls.ca, cert: tls.cert, key: tls.key }),
      });
      const timer = setTimeout(() => {
        session.destroy();
        reject(unavailable(endpoint, `no connection within ${Math.round(timeoutMs)} ms`));
      }, timeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        session.destroy();
        reject(unavailable(endpoint, err.message, err));
      };
      session.once("error", onError);
      // Connected once the server's first SETTINGS frame arrives, not when
      // TCP connects: a frozen server's kernel still accepts connections.
      session.once("remoteSettings", () => {
        clearTimeout(timer);
        session.off("error", onError);
        // Errors after connecting end the calls in flight, which report them.
        session.on("error", () => undefined);
        session.setLocalWindowSize(WINDOW_BYTES);
        resolve(session);
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Closes the connection; calls in flight fail. */
  close(): void {
    this.closed = true;
    const session = this.session;
    this.session = undefined;
    session?.destroy();
  }

  /** Sends one request message and resolves to the one response message. */
  async unary(path: string, request: Uint8Array, options: CallOptions): Promise<Buffer> {
    const session = await this.connect(options.deadline);
    return new Promise<Buffer>((resolve, reject) => {
      const stream = session.request(requestHeaders(path, options, true));
      const decoder = new FrameDecoder();
      const messages: Buffer[] = [];
      let status: GrpcError | null | undefined;
      let settled = false;
      const finish = (err: GrpcError | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          reject(err);
          return;
        }
        const [message] = messages;
        if (messages.length !== 1 || !message) {
          reject(new GrpcError(GrpcCode.INTERNAL, `expected one response, got ${messages.length}`));
        } else resolve(message);
      };
      const timer = setTimeout(
        () => {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          finish(new GrpcError(GrpcCode.DEADLINE_EXCEEDED, "no answer before the deadline"));
        },
        Math.max(0, options.deadline - Date.now()),
      );
      stream.on(
        "response",
        (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
          const httpStatus = headers[":status"];
          if (httpStatus !== 200) {
            finish(new GrpcError(GrpcCode.UNKNOWN, `HTTP status ${String(httpStatus)}`));
            return;
          }
          status = statusOf(headers);
        },
      );
      stream.on("trailers", (trailers: http2.IncomingHttpHeaders) => {
        status = statusOf(trailers);
      });
      stream.on("data", (chunk: Buffer) => {
        try {
          for (const message of decoder.push(chunk)) messages.push(message);
        } catch (err) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          finish(err as GrpcError);
        }
      });
      stream.on("error", (err: Error) => {
        finish(new GrpcError(GrpcCode.UNAVAILABLE, err.message, { cause: err }));
      });
      stream.on("close", () => {
        if (status === undefined) {
          finish(
            new GrpcError(
              GrpcCode.UNAVAILABLE,
              `the stream closed without a status (HTTP/2 code ${stream.rstCode})`,
            ),
          );
        } else finish(status);
      });
      stream.end(frame(request));
    });
  }

  /** Opens a bidirectional stream; `deadline` bounds connecting only. */
  async stream(path: string, options: CallOptions, handlers: StreamHandlers): Promise<BidiStream> {
    const session = await this.connect(options.deadline);
    const stream = session.request(requestHeaders(path, options, false));
    return new BidiStream(stream, handlers);
  }
}

function requestHeaders(
  path: string,
  options: CallOptions,
  withTimeout: boolean,
): http2.OutgoingHttpHeaders {
  return {
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...(withTimeout && { "grpc-timeout": timeoutHeader(options.deadline) }),
    ...options.metadata,
  };
}

export interface StreamHandlers {
  onMessage(message: Buffer): void;
  /** Called once: null when the server ended the stream with OK. */
  onEnd(error: GrpcError | null): void;
}

/** One open bidirectional call. */
export class BidiStream {
  private ended = false;

  constructor(
    private readonly stream: http2.ClientHttp2Stream,
    private readonly handlers: StreamHandlers,
  ) {
    const decoder = new FrameDecoder();
    let status: GrpcError | null | undefined;
    stream.on("response", (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
      if (headers[":status"] !== 200) {
        this.end(new GrpcError(GrpcCode.UNKNOWN, `HTTP status ${String(headers[":status"])}`));
        return;
      }
      status = statusOf(headers);
    });
    stream.on("trailers", (trailers: http2.IncomingHttpHeaders) => {
      status = statusOf(trailers);
    });
    stream.on("data", (chunk: Buffer) => {
      try {
        for (const message of decoder.push(chunk)) {
          if (this.ended) return;
          handlers.onMessage(message);
        }
      } catch (err) {
        this.cancel();
        this.end(err instanceof GrpcError ? err : new GrpcError(GrpcCode.INTERNAL, String(err)));
      }
    });
    stream.on("error", (err: Error) => {
      this.end(new GrpcError(GrpcCode.UNAVAILABLE, err.message, { cause: err }));
    });
    stream.on("close", () => {
      this.end(
        status === undefined
          ? new GrpcError(GrpcCode.UNAVAILABLE, "the stream closed without a status")
          : status,
      );
    });
  }

  private end(error: GrpcError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.handlers.onEnd(error);
  }

  /** Sends one message. */
  send(message: Uint8Array): void {
    if (!this.stream.closed && !this.stream.destroyed) this.stream.write(frame(message));
  }

  /** Half-closes: no more messages from this side; the server then ends the call. */
  halfClose(): void {
    if (!this.stream.closed && !this.stream.destroyed) this.stream.end();
  }

  /** Ends the call at once (RST_STREAM CANCEL); `onEnd` reports CANCELLED. */
  cancel(): void {
    if (!this.stream.closed && !this.stream.destroyed) {
      this.stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    this.end(new GrpcError(GrpcCode.CANCELLED, "cancelled by the client"));
  }
}
