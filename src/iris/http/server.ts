/**
 * The HTTP server: `node:http` on one or more addresses, keep-alive, the
 * router, and the one place where a thrown error becomes a response, a log
 * line and a metric.
 *
 * - An `HttpError` becomes its status with a one-line text body (logged at
 *   debug: bad requests are the client's business); anything else is a bug
 *   or a store failure, a 500 logged at error.
 * - Once a response's headers are out (a NAR mid-stream), an error cannot
 *   become a status any more: the connection is destroyed, so the client
 *   sees a failed transfer, never a short body that looks complete.
 * - Requests the parser refuses (oversized headers, garbage) are answered
 *   400/431 in `clientError` and counted under the route `invalid`.
 * - `close()` is graceful: stop accepting, close idle keep-alive
 *   connections, let requests in flight finish (their connections close
 *   after the response), and cut whatever remains after the timeout.
 */

import { lstat, unlink } from "node:fs/promises";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net, { type Socket } from "node:net";

import { OgygiaError, errorMessage, hasErrorCode } from "../../core/index.js";
import { errorFields, type Logger } from "../../log/index.js";
import { HttpError } from "./http-error.js";
import { ConnectionGuard, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from "./limits.js";
import type { HttpMetrics } from "./metrics.js";
import { createRouter, type Route, type RouteOutcome, type Router } from "./router.js";
import { requestPath } from "./url.js";

/** A listen address, parsed. */
export interface ListenAddress {
  host: string;
  /** 0: the kernel picks a free port. */
  port: number;
  /** As written in the configuration, e.g. `[::1]:35742` or `unix:/run/ogygia/irisd.sock`. */
  text: string;
  /** A Unix socket's path (`unix:/path`) instead of host and port. */
  socketPath?: string;
}

export interface IrisServerOptions {
  routes: readonly Route[];
  log: Logger;
  metrics: HttpMetrics;
  /** On close, how long requests in flight may take before their connections are cut. */
  shutdownTimeoutMs: number;
  /** Limit on the request line and headers together (default 8 KiB; larger gets 431). */
  maxHeaderSize?: number;
  /** Idle keep-alive connections are closed after this long (default 30 s). */
  keepAliveTimeoutMs?: number;
  /** Connection cap and timeouts (`limits.ts`); they override `keepAliveTimeoutMs`. */
  limits?: ConnectionLimits;
  /**
   * Listening in a `node:cluster` worker: the addresses are shared with the
   * other workers (the primary holds the sockets and removed stale socket files).
   */
  shared?: boolean;
  /**
   * The server of the primary process that only this daemon's workers reach
   * (a Unix socket in a folder only the daemon's user may enter): a request's
   * client address is the one its worker forwards (`FORWARDED_CLIENT_HEADER`),
   * and Unix sockets are not opened to every user.
   */
  forwardedFromWorkers?: boolean;
}

/** The header a worker names its client's address in, when it passes a request to the primary. */
export const FORWARDED_CLIENT_HEADER = "x-ogygia-irisd-client";

const CLIENT = Symbol("irisd client address");

/**
 * The address of the client a request came from: the socket's peer, or, on
 * the primary's private server, the client of the worker that forwarded it
 * (undefined for a Unix socket client).
 */
export function clientAddress(req: IncomingMessage): string | undefined {
  const forwarded = (req as { [CLIENT]?: string | null })[CLIENT];
  return forwarded === undefined ? req.socket.remoteAddress : (forwarded ?? undefined);
}

/** An address the server is listening on. */
export interface BoundAddress {
  /** As configured, e.g. `127.0.0.1:0`. */
  configured: string;
  host: string;
  port: number;
  /** `http://127.0.0.1:41234`, `http://[::1]:35742`, or `unix:/path` for a Unix socket */
  url: string;
  /** The Unix socket's path, for `unix:` addresses. */
  socketPath?: string;
}

const ROUTE_INVALID = "invalid";
const ROUTE_UNMATCHED = "unmatched";
const TEXT = "text/plain; charset=utf-8";

function listenError(address: ListenAddress, err: unknown): OgygiaError {
  const where = address.text;
  if (hasErrorCode(err, "EADDRINUSE")) {
    return new OgygiaError(
      "ERR_OGYGIA_IRISD_LISTEN",
      `cannot listen on ${where}: the address is already in use`,
      {
        hint: "Another process (perhaps another ogygia-irisd) holds this port: stop it, or change [server] listen.",
        cause: err,
      },
    );
  }
  if (hasErrorCode(err, "EADDRNOTAVAIL")) {
    return new OgygiaError(
      "ERR_OGYGIA_IRISD_LISTEN",
      `cannot listen on ${where}: this host has no such address`,
      {
        hint: "Check [server] listen against the host's addresses (is the overlay network up?).",
        cause: err,
      },
    );
  }
  if (hasErrorCode(err, "EACCES", "EPERM")) {
    return new OgygiaError(
      "ERR_OGYGIA_IRISD_LISTEN",
      `cannot listen on ${where}: permission denied`,
      {
        hint: "Ports below 1024 need privileges; use a higher port.",
        cause: err,
      },
    );
  }
  return new OgygiaError(
    "ERR_OGYGIA_IRISD_LISTEN",
    `cannot listen on ${where}: ${errorMessage(err)}`,
    {
      cause: err,
    },
  );
}

/** True when the request announces a body (Content-Length above 0, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** True when the request failed because its client went away (reset, or closed mid-body). */
function clientAborted(req: IncomingMessage, err: unknown): boolean {
  if (hasErrorCode(err, "ECONNRESET", "EPIPE", "ECONNABORTED")) return true;
  return req.socket.destroyed && !req.complete;
}

function urlOf(host: string, port: number): string {
  return host.includes(":") ? `http://[${host}]:${port}` : `http://${host}:${port}`;
}

/** Removes the stale socket files among `addresses` (see `removeStaleSocket`), before workers share them. */
export async function removeStaleSockets(addresses: readonly ListenAddress[]): Promise<void> {
  for (const address of addresses) await removeStaleSocket(address);
}

/**
 * A socket file left by a daemon that died is removed; one that answers
 * belongs to a live server (EADDRINUSE follows); anything else is left for
 * `listen` to refuse.
 */
async function removeStaleSocket(address: ListenAddress): Promise<void> {
  const file = address.socketPath;
  if (file === undefined) return;
  try {
    if (!(await lstat(file)).isSocket()) return;
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return;
    throw listenError(address, err);
  }
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path: file });
    probe.setTimeout(500);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("timeout", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => {
      resolve(false);
    });
  });
  if (!alive) await unlink(file).catch(() => undefined);
}

const CLIENT_ERROR_RESPONSES: Record<string, string> = {
  431: "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
  408: "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
  400: "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
};

export class IrisServer {
  private readonly router: Router;
  private readonly log: Logger;
  private readonly metrics: HttpMetrics;
  private readonly options: IrisServerOptions;
  private readonly servers: http.Server[] = [];
  private readonly debug: boolean;
  private bound: BoundAddress[] = [];
  private stopping = false;
  private closing: Promise<void> | undefined;
  private inFlight = 0;
  private readonly guard: ConnectionGuard;

  constructor(options: IrisServerOptions) {
    this.options = options;
    this.guard = new ConnectionGuard(
      options.limits ?? {
        ...DEFAULT_CONNECTION_LIMITS,
        idleTimeoutMs: options.keepAliveTimeoutMs ?? DEFAULT_CONNECTION_LIMITS.idleTimeoutMs,
      },
      options.log,
      options.metrics.registry,
    );
    this.router = createRouter(options.routes);
    this.log = options.log;
    this.metrics = options.metrics;
    this.debug = options.log.isLevelEnabled("debug");
  }

  /** Where the server listens (after `listen`). */
  get addresses(): readonly BoundAddress[] {
    return this.bound;
  }

  /** Requests being answered right now. */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Listens on every address, or on none: one failure closes the others and throws. */
  async listen(addresses: readonly ListenAddress[]): Promise<readonly BoundAddress[]> {
    try {
      for (const address of addresses) {
        if (address.socketPath !== undefined && this.options.shared !== true) {
          await removeStaleSocket(address);
        }
        this.bound.push(await this.listenOne(address));
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    return this.bound;
  }

  private listenOne(address: ListenAddress): Promise<BoundAddress> {
    const server = http.createServer({
      maxHeaderSize: this.options.maxHeaderSize ?? 8192,
      keepAliveTimeout: this.options.keepAliveTimeoutMs ?? 30_000,
      noDelay: true,
      // How often Node checks the header timeout.
      connectionsCheckingInterval: 1000,
    });
    this.guard.attach(server);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      this.onRequest(req, res);
    });
    server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      this.onClientError(err, socket);
    });
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(listenError(address, err));
      };
      server.once("error", onError);
      const open = this.options.forwardedFromWorkers !== true;
      const where =
        address.socketPath === undefined
          ? { host: address.host, port: address.port }
          : // The local nix-daemon and users' clients connect: anyone may read this cache.
            { path: address.socketPath, readableAll: open, writableAll: open };
      server.listen({ ...where, exclusive: this.options.shared !== true }, () => {
        server.off("error", onError);
        server.on("error", (err) => {
          this.log.error({ listen: address.text, ...errorFields(err) }, "server error");
        });
        if (address.socketPath !== undefined) {
          resolve({
            configured: address.text,
            host: "",
            port: 0,
            url: `unix:${address.socketPath}`,
            socketPath: address.socketPath,
          });
          return;
        }
        const info = server.address();
        const port = info !== null && typeof info === "object" ? info.port : address.port;
        resolve({
          configured: address.text,
          host: address.host,
          port,
          url: urlOf(address.host, port),
        });
      });
    });
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    this.guard.onRequest(req.socket);
    this.inFlight += 1;
    if (this.options.forwardedFromWorkers === true) {
      const client = req.headers[FORWARDED_CLIENT_HEADER];
      (req as { [CLIENT]?: string | null })[CLIENT] = typeof client === "string" ? client : null;
    }
    if (this.stopping) res.shouldKeepAlive = false;
    let routeName = ROUTE_UNMATCHED;
    try {
      const path = requestPath(req.url ?? "/");
      const { route, params } = this.router.find(req.method ?? "GET", path);
      routeName = route.name;
      const outcome = route.handle(req, res, params);
      if (outcome instanceof Promise) {
        const name = routeName;
        outcome.then(
          (done) => {
            this.finish(req, name, done, started);
          },
          (err: unknown) => {
            this.fail(req, res, name, err, started);
          },
        );
      } else {
        this.finish(req, routeName, outcome, started);
      }
    } catch (err) {
      this.fail(req, res, routeName, err, started);
    }
  }

  /** A request is over (answered, failed or abandoned): exactly once per request. */
  private settled(req: IncomingMessage): void {
    this.inFlight -= 1;
    this.guard.onResponseDone(req.socket);
  }

  private finish(
    req: IncomingMessage,
    route: string,
    outcome: RouteOutcome,
    started: number,
  ): void {
    this.settled(req);
    const seconds = (performance.now() - started) / 1000;
    // A request passed to the primary is counted there, under the route that answered it.
    if (outcome.forwarded !== true)
      this.metrics.request(route, outcome.status, outcome.bytes, seconds);
    if (this.debug) {
      this.log.debug(
        {
          method: req.method,
          url: req.url,
          route,
          status: outcome.status,
          bytes: outcome.bytes,
          ms: Math.round(seconds * 100_000) / 100,
          remote: req.socket.remoteAddress,
        },
        "request",
      );
    }
  }

  /** The one place an error becomes a response (or an aborted connection), a log line and a metric. */
  private fail(
    req: IncomingMessage,
    res: ServerResponse,
    route: string,
    err: unknown,
    started: number,
  ): void {
    if (!res.headersSent && clientAborted(req, err)) {
      // The client left mid-request (e.g. mid-body): not a server error.
      this.settled(req);
      this.metrics.aborted(route, "client");
      if (this.debug)
        this.log.debug({ method: req.method, url: req.url, route }, "client went away");
      res.destroy();
      return;
    }
    if (res.headersSent) {
      this.abort(req, res, route, err);
      this.settled(req);
      this.metrics.request(route, res.statusCode, 0, (performance.now() - started) / 1000);
      return;
    }
    let status = 500;
    let message = "internal error";
    if (err instanceof HttpError) {
      status = err.status;
      message = err.message;
      for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
      // 502: a peer failed; the peer layer logged why, once.
      if (status >= 500 && status !== 502)
        this.log.error({ method: req.method, url: req.url, ...errorFields(err) }, message);
    } else {
      this.log.error(
        {
          method: req.method,
          url: req.url,
          route,
          ...errorFields(err),
          stack: err instanceof OgygiaError || !(err instanceof Error) ? undefined : err.stack,
        },
        "request failed",
      );
    }
    // A request with a body we did not read would desynchronise keep-alive: close instead.
    // (A request without a body is not `complete` yet while a synchronous handler runs.)
    if (!req.complete && hasBody(req)) res.shouldKeepAlive = false;
    const outcome = this.sendError(req, res, status, message);
    this.finish(req, route, outcome, started);
  }

  private sendError(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    message: string,
  ): RouteOutcome {
    const body = Buffer.from(`${message}\n`, "utf8");
    res.setHeader("Content-Type", TEXT);
    res.setHeader("Content-Length", body.length);
    res.writeHead(status);
    res.end(body);
    return { status, bytes: req.method === "HEAD" ? 0 : body.length };
  }

  /** Headers are out: the only honest thing left is to cut the connection. */
  private abort(req: IncomingMessage, res: ServerResponse, route: string, err: unknown): void {
    const clientGone = req.socket.destroyed || res.destroyed;
    const reason = clientGone
      ? "client"
      : err instanceof OgygiaError &&
          (err.code === "ERR_OGYGIA_NIX_NAR" || err.code === "ERR_OGYGIA_IRISD")
        ? "store"
        : "error";
    this.metrics.aborted(route, reason);
    const fields = { method: req.method, url: req.url, route, ...errorFields(err) };
    if (reason === "client") this.log.debug(fields, "client went away mid-response");
    else if (reason === "store")
      this.log.warn(fields, "transfer aborted: the store path changed or vanished");
    else this.log.error(fields, "transfer aborted");
    res.destroy();
    req.socket.destroy();
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? "";
    if (code === "ECONNRESET" || code === "EPIPE" || !socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      code === "HPE_HEADER_OVERFLOW" ? 431 : code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    this.metrics.request(ROUTE_INVALID, status, 0, 0);
    if (status === 408) this.guard.count("header-timeout", { remote: socket.remoteAddress });
    if (this.debug) {
      this.log.debug({ code, status, remote: socket.remoteAddress }, "unparseable request refused");
    }
    socket.end(CLIENT_ERROR_RESPONSES[String(status)] ?? "");
  }

  /**
   * Stops accepting, lets requests in flight finish, and resolves once
   * every connection is closed (cut after the shutdown timeout).
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.guard.close();
    const closed = this.servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          if (!server.listening) {
            resolve();
            return;
          }
          server.close(() => {
            resolve();
          });
        }),
    );
    const sweep = (): void => {
      for (const server of this.servers) server.closeIdleConnections();
    };
    sweep();
    // Connections that finish a response during shutdown become idle: close them as they do.
    const sweeper = setInterval(sweep, 50);
    const deadline = setTimeout(() => {
      this.log.warn(
        { requestsInFlight: this.inFlight, timeoutMs: this.options.shutdownTimeoutMs },
        "shutdown timeout: cutting the connections still open",
      );
      for (const server of this.servers) server.closeAllConnections();
    }, this.options.shutdownTimeoutMs);
    try {
      await Promise.all(closed);
    } finally {
      clearInterval(sweeper);
      clearTimeout(deadline);
    }
  }
}
