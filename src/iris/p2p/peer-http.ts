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
    async request(base, request) {
      const headers: Record<string, string> = { ...request.headers };
      if (base.authorization !== undefined) headers.authorization = base.authorization;
      // One controller for the whole exchange: a timer bounds the headers (and
      // a small body), the caller's signal may abort at any time.
      const controller = new AbortController();
      const abort = (reason: string): void => {
        controller.abort(peerError(base, `${request.path}: ${reason}`));
      };
      let timer = setTimeout(() => {
        abort("timed out");
      }, request.timeoutMs);
      const onAbort = (): void => {
        abort("aborted");
      };
      if (request.signal?.aborted === true) onAbort();
      request.signal?.addEventListener("abort", onAbort, { once: true });
      const release = (): void => {
        clearTimeout(timer);
        request.signal?.removeEventListener("abort", onAbort);
      };
      let response;
      try {
        response = await agent.request({
          origin: base.origin,
          path: `${base.pathPrefix}${request.path}`,
          method: request.method ?? "GET",
          headers,
          signal: controller.signal,
          headersTimeout: request.timeoutMs,
          bodyTimeout: request.bodyIdleMs ?? 10_000,
        });
      } catch (err) {
        release();
        const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
        if (reason instanceof OgygiaError) throw reason;
        throw peerError(base, `${request.path}: ${describeFailure(err)}`, err);
      }
      clearTimeout(timer);
      const body = response.body;
      // Errors reach whoever reads the body; a body thrown away must not crash the process.
      body.on("error", () => undefined);
      body.once("close", release);
      return {
        status: response.statusCode,
        headers: response.headers,
        body: body as AsyncIterable<Buffer>,
        async readBody(limit) {
          const declared = Number(response.headers["content-length"] ?? NaN);
          if (declared > limit) {
            body.destroy();
            throw peerError(base, `${request.path}: ${declared} bytes, more than ${limit}`);
          }
          timer = setTimeout(() => {
            abort("the body took too long");
          }, request.timeoutMs);
          const chunks: Buffer[] = [];
          let size = 0;
          try {
            for await (const chunk of body as AsyncIterable<Buffer>) {
              size += chunk.length;
              if (size > limit) {
                body.destroy();
                throw peerError(base, `${request.path}: more than ${limit} bytes`);
              }
              chunks.push(chunk);
            }
          } catch (err) {
            const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
            if (reason instanceof OgygiaError) throw reason;
            throw peerError(base, `${request.path}: ${describeFailure(err)}`, err);
          } finally {
            release();
          }
          return Buffer.concat(chunks, size);
        },
        discard() {
          // A small body is read to its end, so the connection can be reused.
          body.dump({ limit: DISCARD_LIMIT }).catch(() => undefined);
        },
      };
    },
    async close() {
      await agent.destroy();
    },
  };
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
