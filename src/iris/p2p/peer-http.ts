/**
 * The HTTP client irisd uses to talk to its peers: undici's keep-alive
 * agent behind a small interface (this module is the only importer of
 * undici), with bounded timeouts on every request.
 *
 * - connecting: `CONNECT_TIMEOUT_MS`;
 * - the response headers: the caller's `timeoutMs` (also bounds reading a
 *   small body with `readBody`, through an abort signal);
 * - a streamed body (a NAR): `bodyIdleMs` without a byte, then it fails.
 *
 * Credentials in a peer URL (`http://user:pass@host`) become a Basic
 * `Authorization` header; they are never logged (see `peerLabel`).
 */

import type { IncomingHttpHeaders } from "node:http";

import { Agent } from "undici";

import { OgygiaError, redactUrl } from "../../core/index.js";
import { canPoolGet, pooledGet, type PooledResponse } from "./peer-stream.js";
import type { Slabs } from "./slabs.js";

/** Time to establish a TCP (and TLS) connection to a peer. */
export const CONNECT_TIMEOUT_MS = 500;
/** A discarded body up to this size is read out to keep its connection; a larger one closes it. */
const DISCARD_LIMIT = 64 * 1024;
/** Idle connections to a peer are kept this long. */
const KEEP_ALIVE_MS = 30_000;

export interface PeerRequest {
  /** Path and query below the peer's base URL, e.g. `local/<hash>.narinfo`. */
  path: string;
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  /** Time for the response headers, and for a body read with `readBody`. */
  timeoutMs: number;
  /** For streamed bodies: the longest pause between two chunks (default 10 s). */
  bodyIdleMs?: number;
  /** Aborts the request (and its body) when it fires. */
  signal?: AbortSignal;
}

export interface PeerResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, as chunks; must be read to its end, or `discard`ed. */
  body: AsyncIterable<Buffer>;
  /** Reads the whole body, failing when it exceeds `limit` bytes. */
  readBody(limit: number): Promise<Buffer>;
  /** Throws the rest of the body away and frees the connection. */
  discard(): void;
}

export interface PeerHttp {
  request(base: PeerBase, request: PeerRequest): Promise<PeerResponse>;
  /**
   * A `GET` whose body is read into `slabs` (`peer-stream.ts`): for NAR
   * bodies; undefined when this peer cannot be reached that way (HTTPS).
   */
  pooledGet?(
    base: PeerBase,
    request: PeerRequest & { expectBytes: number; slabs: Slabs },
  ): Promise<PooledResponse> | undefined;
  close(): Promise<void>;
}

/** A peer's base URL, split once. */
export interface PeerBase {
  /** As configured. */
  readonly url: string;
  /** Redacted: safe for logs, errors and metric labels. */
  readonly label: string;
  readonly origin: string;
  /** The base path, ending in `/`. */
  readonly pathPrefix: string;
  readonly authorization: string | undefined;
}

/** Splits a configured peer URL (already validated by the configuration). */
export function peerBase(url: string): PeerBase {
  const parsed = new URL(url);
  const authorization =
    parsed.username !== "" || parsed.password !== ""
      ? `Basic ${Buffer.from(
          `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`,
        ).toString("base64")}`
      : undefined;
  const pathPrefix = parsed.pathname.endsWith("/") ? parsed.pathname : `${parsed.pathname}/`;
  return { url, label: peerLabel(url), origin: parsed.origin, pathPrefix, authorization };
}

/** The peer URL with credentials redacted and no trailing slash: for logs and labels. */
export function peerLabel(url: string): string {
  return redactUrl(url).replace(/\/+$/, "");
}

function peerError(base: PeerBase, what: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD_PEER", `peer ${base.label}: ${what}`, { cause });
}

/** A keep-alive client for peers. */
export function createPeerHttp(options: { connections?: number } = {}): PeerHttp {
  const agent = new Agent({
    connect: { timeout: CONNECT_TIMEOUT_MS },
    keepAliveTimeout: KEEP_ALIVE_MS,
    keepAliveMaxTimeout: KEEP_ALIVE_MS,
    connections: options.connections ?? 64,
    // Responses come whole or not at all: no pipelining behind a slow NAR.
    pipelining: 1,
  });
  return {
    request: (base, request) => new Exchange(base, request).run(agent),
    pooledGet: (base, request) =>
      canPoolGet(base)
        ? pooledGet(base, {
            path: request.path,
            headers: request.headers ?? {},
            timeoutMs: request.timeoutMs,
            bodyIdleMs: request.bodyIdleMs ?? 10_000,
            signal: request.signal,
            expectBytes: request.expectBytes,
            slabs: request.slabs,
            connectTimeoutMs: CONNECT_TIMEOUT_MS,
            describe: describeFailure,
          })
        : undefined,
    async close() {
      await agent.destroy();
    },
  };
}

type UndiciBody = Awaited<ReturnType<Agent["request"]>>["body"];

/**
 * One request and its response. One controller for the whole exchange: a
 * timer bounds the headers (and a small body), the caller's signal may
 * abort at any time; both are released when the body closes.
 */
class Exchange {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private readonly onAbort = (): void => {
    this.abort("aborted");
  };

  constructor(
    private readonly base: PeerBase,
    private readonly request: PeerRequest,
  ) {}

  async run(agent: Agent): Promise<PeerResponse> {
    const { base, request } = this;
    const headers: Record<string, string> = { ...request.headers };
    if (base.authorization !== undefined) headers.authorization = base.authorization;
    this.startTimer("timed out");
    if (request.signal?.aborted === true) this.onAbort();
    request.signal?.addEventListener("abort", this.onAbort, { once: true });
    let response;
    try {
      response = await agent.request({
        origin: base.origin,
        path: `${base.pathPrefix}${request.path}`,
        method: request.method ?? "GET",
        headers,
        signal: this.controller.signal,
        headersTimeout: request.timeoutMs,
        bodyTimeout: request.bodyIdleMs ?? 10_000,
      });
    } catch (err) {
      this.release();
      throw this.failure(err);
    }
    clearTimeout(this.timer);
    const body = response.body;
    // Errors reach whoever reads the body; a body thrown away must not crash the process.
    body.on("error", () => undefined);
    body.once("close", () => {
      this.release();
    });
    return {
      status: response.statusCode,
      headers: response.headers,
      body: body as AsyncIterable<Buffer>,
      readBody: (limit) => this.readBody(body, response.headers, limit),
      discard() {
        // A small body is read to its end, so the connection can be reused.
        body.dump({ limit: DISCARD_LIMIT }).catch(() => undefined);
      },
    };
  }

  private async readBody(
    body: UndiciBody,
    headers: IncomingHttpHeaders,
    limit: number,
  ): Promise<Buffer> {
    const path = this.request.path;
    const declared = Number(headers["content-length"] ?? NaN);
    if (declared > limit) {
      body.destroy();
      throw peerError(this.base, `${path}: ${declared} bytes, more than ${limit}`);
    }
    this.startTimer("the body took too long");
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
          body.destroy();
          throw peerError(this.base, `${path}: more than ${limit} bytes`);
        }
        chunks.push(chunk);
      }
    } catch (err) {
      throw this.failure(err);
    } finally {
      this.release();
    }
    return Buffer.concat(chunks, size);
  }

  private startTimer(reason: string): void {
    this.timer = setTimeout(() => {
      this.abort(reason);
    }, this.request.timeoutMs);
  }

  private abort(reason: string): void {
    this.controller.abort(peerError(this.base, `${this.request.path}: ${reason}`));
  }

  private release(): void {
    clearTimeout(this.timer);
    this.request.signal?.removeEventListener("abort", this.onAbort);
  }

  /** The error to throw: ours when we aborted (timeout, caller), else the cause described. */
  private failure(err: unknown): OgygiaError {
    const reason: unknown = this.controller.signal.aborted ? this.controller.signal.reason : err;
    if (reason instanceof OgygiaError) return reason;
    return peerError(this.base, `${this.request.path}: ${describeFailure(err)}`, err);
  }
}

/** A short reason for a failed request: timeout, refused, reset, ... */
export function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  if (err.name === "TimeoutError" || code === "UND_ERR_HEADERS_TIMEOUT") return "timed out";
  if (code === "UND_ERR_CONNECT_TIMEOUT") return "connect timed out";
  if (code === "UND_ERR_BODY_TIMEOUT") return "the body stalled";
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return "connection reset";
  if (err.name === "AbortError") return "aborted";
  return err.message;
}
