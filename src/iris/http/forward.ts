/**
 * A worker's way to the primary process: every request a worker cannot
 * answer from the local store alone is passed, as it came, to the
 * primary's private server (a Unix socket only the daemon's user may
 * reach), and the primary's answer is streamed back with its status and
 * headers. The client's address travels in `FORWARDED_CLIENT_HEADER` (a
 * client's own copy of that header is dropped), so the primary's loopback
 * rules see the real client.
 *
 * The primary counts and logs what it answers; the worker counts only what
 * never reached it (a 502 under the route `forward`). A response the
 * primary cuts mid-body cuts the client's connection too, never ending it
 * as if complete.
 */

import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { pipeline } from "node:stream";

import { errorMessage, hasErrorCode } from "../../core/index.js";
import type { Logger } from "../../log/index.js";
import { HttpError } from "./http-error.js";
import { createCauseLog } from "./limits.js";
import type { Route, RouteOutcome } from "./router.js";
import { FORWARDED_CLIENT_HEADER } from "./server.js";

/** Headers of one connection, not of the request or response (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  FORWARDED_CLIENT_HEADER,
]);

/** Idle connections to the primary a worker keeps for the next requests. */
const MAX_IDLE_CONNECTIONS = 64;

export interface Forwarder {
  /** Passes the request to the primary and streams its answer back. */
  forward(req: IncomingMessage, res: ServerResponse): Promise<RouteOutcome>;
  close(): void;
}

/**
 * `rawHeaders` (name, value, name, value, ...) without the hop-by-hop ones:
 * the fixed list and those the message's own `Connection` header names.
 */
function endToEnd(raw: readonly string[]): string[] {
  let named: Set<string> | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== "connection") continue;
    for (const token of (raw[i + 1] ?? "").split(",")) {
      const name = token.trim().toLowerCase();
      if (name !== "") (named ??= new Set()).add(name);
    }
  }
  const kept: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] ?? "").toLowerCase();
    if (!HOP_BY_HOP.has(name) && named?.has(name) !== true)
      kept.push(raw[i] ?? "", raw[i + 1] ?? "");
  }
  return kept;
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** A forwarder to the primary's private server at `socketPath`. */
export function createForwarder(options: { socketPath: string; log: Logger }): Forwarder {
  const agent = new http.Agent({
    keepAlive: true,
    maxFreeSockets: MAX_IDLE_CONNECTIONS,
    scheduling: "lifo",
  });
  const note = createCauseLog(options.log);

  const forward = (req: IncomingMessage, res: ServerResponse): Promise<RouteOutcome> =>
    new Promise((resolve, reject) => {
      const attempt = (retried: boolean): void => {
        const headers = endToEnd(req.rawHeaders);
        const client = req.socket.remoteAddress;
        if (client !== undefined) headers.push(FORWARDED_CLIENT_HEADER, client);
        const body = hasBody(req);
        const up = http.request({
          socketPath: options.socketPath,
          agent,
          method: req.method,
          path: req.url,
          headers,
        });
        const onClientGone = (): void => {
          if (!res.writableFinished) up.destroy();
        };
        res.once("close", onClientGone);
        up.once("error", (err) => {
          res.off("close", onClientGone);
          if (res.destroyed || req.socket.destroyed) {
            // The client left first: the primary saw its request cut and counts it.
            resolve({ status: 499, bytes: 0, forwarded: true });
            return;
          }
          // An idle connection the primary closed as it was reused: once more, on a new one.
          if (!retried && !body && up.reusedSocket && hasErrorCode(err, "ECONNRESET", "EPIPE")) {
            attempt(true);
            return;
          }
          note("forward", "the main process did not answer a request a worker passed to it", {
            err: errorMessage(err),
          });
          reject(new HttpError(502, "the daemon's main process did not answer"));
        });
        up.once("response", (upRes) => {
          res.off("close", onClientGone);
          const status = upRes.statusCode ?? 502;
          // The primary's Date stands; its Connection: close is the client's too.
          res.sendDate = false;
          if (upRes.headers.connection === "close") res.shouldKeepAlive = false;
          res.writeHead(status, upRes.statusMessage, endToEnd(upRes.rawHeaders));
          pipeline(upRes, res, (err) => {
            // Cut mid-body (by the primary or the client): the connection goes, never a short
            // body that looks complete. The primary counted the transfer either way.
            if (err) res.destroy();
            resolve({ status, bytes: 0, forwarded: true });
          });
        });
        if (body) {
          pipeline(req, up, (err) => {
            if (err) up.destroy();
          });
        } else {
          up.end();
        }
      };
      attempt(false);
    });

  return {
    forward,
    close() {
      agent.destroy();
    },
  };
}

/** Every method Node parses: a route for whatever the others do not take. */
const ANY_METHOD: readonly string[] = http.METHODS;

/** The last route of a worker: every path and method goes to the primary. */
export function forwardRoute(forwarder: Forwarder): Route {
  return {
    name: "forward",
    methods: ANY_METHOD,
    match: () => [],
    handle: (req, res) => forwarder.forward(req, res),
  };
}

function isNotFound(err: unknown): boolean {
  return err instanceof HttpError && err.status === 404;
}

/**
 * `route`, answered by the worker when the local store has the path; its
 * 404 (not in the store) goes to the primary instead, whose resolver chain
 * goes on to the NAR cache and the peers.
 */
export function orForward(route: Route, forwarder: Forwarder): Route {
  return {
    name: route.name,
    methods: route.methods,
    match: (path) => route.match(path),
    handle(req, res, params) {
      let outcome: RouteOutcome | Promise<RouteOutcome>;
      try {
        outcome = route.handle(req, res, params);
      } catch (err) {
        if (isNotFound(err) && !res.headersSent) return forwarder.forward(req, res);
        throw err;
      }
      if (!(outcome instanceof Promise)) return outcome;
      return outcome.catch((err: unknown) => {
        if (isNotFound(err) && !res.headersSent) return forwarder.forward(req, res);
        throw err;
      });
    },
  };
}
