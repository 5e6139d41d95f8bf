/**
 * The dashboard's HTTP server: the page and its assets, the JSON API, the
 * SSE stream and /metrics. Read-only: nothing it serves changes the fleet.
 * Every answer carries a strict Content-Security-Policy (scripts only from
 * this server, none inline), `nosniff` and `no-referrer`.
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, realpathSync } from "node:fs";
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { OgygiaError } from "../core/index.js";
import type { FleetHub } from "./live.js";
import type { HistoryStore } from "./history.js";
import type { DashboardMetrics } from "./metrics.js";
import type { HistoryJson } from "./wire.js";

const SECURITY_HEADERS: OutgoingHttpHeaders = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const TOKEN_COOKIE = "ogygia_dashboard_token";

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Ogygia fleet</title>
<link rel="stylesheet" href="/assets/app.css">
<script type="module" src="/assets/app.js"></script>
</head>
<body>
<noscript>The Ogygia dashboard needs JavaScript; GET /api/fleet has the same data as JSON.</noscript>
</body>
</html>
`;

const LOGIN = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ogygia fleet: sign in</title>
<link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<form class="login" method="post" action="/login">
<h1>Ogygia fleet</h1>
<label>Token <input name="token" type="password" autocomplete="current-password" autofocus></label>
<button type="submit">Sign in</button>
</form>
</body>
</html>
`;

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(body: Buffer | string, type: string): Asset {
  const buffer = Buffer.isBuffer(body) ? body : Buffer.from(body, "utf8");
  const etag = `"${createHash("sha256").update(buffer).digest("base64url").slice(0, 22)}"`;
  return { body: buffer, type, etag };
}

/**
 * This module's file: `import.meta.url` in ESM (tests, the compiled tree).
 * The CLI's CommonJS files have no `import.meta` (the build silences
 * esbuild's warning for it): there the script node runs, the launcher
 * `dist/bundle/launch.cjs`, sits beside them and the page's bundle.
 */
function selfPath(): string {
  const url = (import.meta as { url?: string }).url;
  return url === undefined ? realpathSync(process.argv[1] ?? ".") : fileURLToPath(url);
}

/** The folder with the page's bundle (`dashboard/app.js`), next to the program's bundle. */
function findAssets(): string {
  let dir = path.dirname(selfPath());
  for (let i = 0; i < 4; i += 1) {
    const candidate = path.join(dir, "dashboard");
    if (existsSync(path.join(candidate, "app.js"))) return candidate;
    dir = path.dirname(dir);
  }
  throw new OgygiaError(
    "ERR_OGYGIA_DASHBOARD_LISTEN",
    `the dashboard's page (dashboard/app.js) is missing next to ${selfPath()}`,
    { hint: "Rebuild ogygia with 'npm run build'." },
  );
}

function loadAssets(): Map<string, Asset> {
  const dir = findAssets();
  return new Map([
    [
      "/assets/app.js",
      asset(readFileSync(path.join(dir, "app.js")), "text/javascript; charset=utf-8"),
    ],
    ["/assets/app.css", asset(readFileSync(path.join(dir, "app.css")), "text/css; charset=utf-8")],
  ]);
}

/** Compares in time independent of where the strings differ. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) {
      try {
        return decodeURIComponent(rest.join("="));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export interface ServerOptions {
  hub: FleetHub;
  history: HistoryStore;
  metrics: DashboardMetrics;
  /** When set, every request must present it (bearer token or the login cookie). */
  token: string | undefined;
  /** Called for each failed request, for the log. */
  onError: (err: unknown, req: IncomingMessage) => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** How long /api/fleet waits for the first report before answering 503. */
const FIRST_REPORT_WAIT_MS = 10_000;

/** The dashboard's request handler, as a server not yet listening. */
export function createDashboardServer(options: ServerOptions): Server {
  const assets = loadAssets();
  const page = asset(PAGE, "text/html; charset=utf-8");
  const login = asset(LOGIN, "text/html; charset=utf-8");
  const { hub, history, metrics, token } = options;

  const send = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: Buffer | string,
    headers: OutgoingHttpHeaders,
  ): void => {
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      ...headers,
      "content-length": Buffer.byteLength(body),
    });
    res.end(req.method === "HEAD" ? undefined : body);
  };
  const sendJson = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    value: unknown,
  ): void => {
    send(req, res, status, `${JSON.stringify(value)}\n`, {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
    });
  };
  const sendAsset = (req: IncomingMessage, res: ServerResponse, file: Asset): void => {
    if (req.headers["if-none-match"] === file.etag) {
      res.writeHead(304, { ...SECURITY_HEADERS, etag: file.etag });
      res.end();
      return;
    }
    send(req, res, 200, file.body, {
      "content-type": file.type,
      etag: file.etag,
      "cache-control": "no-cache",
    });
  };

  const authorized = (req: IncomingMessage): boolean => {
    if (token === undefined) return true;
    const header = req.headers.authorization;
    if (header?.startsWith("Bearer ") === true && sameSecret(header.slice(7).trim(), token))
      return true;
    const fromCookie = cookie(req, TOKEN_COOKIE);
    return fromCookie !== undefined && sameSecret(fromCookie, token);
  };

  const handleLogin = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== "POST") {
      sendAsset(req, res, login);
      return;
    }
    let body = "";
    for await (const chunk of req as AsyncIterable<Buffer>) {
      body += chunk.toString("utf8");
      if (body.length > 4096) throw new HttpError(413, "login form too large");
    }
    const given = new URLSearchParams(body).get("token") ?? "";
    if (token === undefined || !sameSecret(given, token)) {
      sendAsset(req, res, login);
      return;
    }
    res.writeHead(303, {
      ...SECURITY_HEADERS,
      location: "/",
      "set-cookie": `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`,
    });
    res.end();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://dashboard.invalid");
    const route = url.pathname;
    if (route === "/login" && token !== undefined) {
      await handleLogin(req, res);
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD")
      throw new HttpError(405, "the dashboard is read-only");
    if (!authorized(req)) {
      if (route.startsWith("/api/") || route === "/metrics") {
        res.setHeader("www-authenticate", 'Bearer realm="ogygia"');
        throw new HttpError(401, "a bearer token is required");
      }
      res.writeHead(303, { ...SECURITY_HEADERS, location: "/login" });
      res.end();
      return;
    }
    if (route === "/" || route.startsWith("/host/")) {
      sendAsset(req, res, page);
      return;
    }
    const file = assets.get(route);
    if (file !== undefined) {
      sendAsset(req, res, file);
      return;
    }
    if (route === "/api/fleet") {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        hub.ready(),
        new Promise((resolve) => (timer = setTimeout(resolve, FIRST_REPORT_WAIT_MS))),
      ]);
      clearTimeout(timer);
      const fleet = hub.fleet();
      if (fleet === undefined) throw new HttpError(503, "the fleet has not been read yet");
      sendJson(req, res, 200, fleet);
      return;
    }
    if (route === "/api/events") {
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      });
      const lastEventId = req.headers["last-event-id"];
      hub.subscribe(res, typeof lastEventId === "string" ? lastEventId : undefined);
      return;
    }
    const historyMatch = /^\/api\/hosts\/([^/]+)\/history$/.exec(route);
    if (historyMatch?.[1] !== undefined) {
      let host: string;
      try {
        host = decodeURIComponent(historyMatch[1]);
      } catch {
        throw new HttpError(400, "the host name is not valid percent-encoding");
      }
      const answer: HistoryJson = { host, entries: history.history(host) };
      sendJson(req, res, 200, answer);
      return;
    }
    if (route === "/metrics") {
      const { contentType, body } = await metrics.render();
      send(req, res, 200, body, { "content-type": contentType, "cache-control": "no-store" });
      return;
    }
    throw new HttpError(404, `no such page: ${route}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) options.onError(err, req);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(req, res, status, {
        error: err instanceof HttpError ? err.message : "internal error (see the dashboard's log)",
      });
    });
  });
  // SSE streams stay open; no request may hold a socket by sending slowly.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  return server;
}
