/**
 * The binary-cache endpoints: `/nix-cache-info`, `/<hash>.narinfo`,
 * `/nar/<hash>-<narhash>.nar` and `/metrics`. Store endpoints are built by
 * `storeRoutes` from a resolver chain and a URL prefix, so the peer-to-peer
 * layer can mount the same handlers at `/local/` asking only local
 * resolvers, and add its own routes (`/bloom`, `/providers/<hash>`, ...)
 * to the list.
 */

import type { IncomingMessage, ServerResponse } from "node:http";

import { OgygiaError } from "../../core/index.js";
import { parseStorePathBaseName, renderNixCacheInfo } from "../../nix/index.js";
import { HttpError, notFound } from "./http-error.js";
import type { HttpMetrics } from "./metrics.js";
import { evaluateRange } from "./range.js";
import type {
  LookupOptions,
  NarCompression,
  ResolverChain,
  ServedNar,
  ServedNarInfo,
} from "./resolve.js";
import {
  exactPath,
  listingPath,
  narInfoPath,
  narPath,
  type Route,
  type RouteOutcome,
} from "./router.js";

const READ = ["GET", "HEAD"] as const;

/** Sends a complete small body (no body for HEAD: Node drops it). */
export function sendBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  contentType: string,
  body: Buffer,
): RouteOutcome {
  res.writeHead(status, ["Content-Type", contentType, "Content-Length", String(body.length)]);
  res.end(body);
  return { status, bytes: req.method === "HEAD" ? 0 : body.length };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return value instanceof Promise;
}

function sendNarInfo(
  req: IncomingMessage,
  res: ServerResponse,
  hashPart: string,
  served: ServedNarInfo | undefined,
): RouteOutcome {
  if (served === undefined) throw notFound(`no serveable store path has the hash ${hashPart}`);
  return sendBody(req, res, 200, "text/x-nix-narinfo", served.body);
}

const NAR_CACHE_CONTROL = "public, max-age=31536000, immutable";

/**
 * Answers with a NAR (or the range asked for). Synchronous when the body
 * goes out in one write (a small NAR from memory): no promise per request.
 */
function sendNar(
  req: IncomingMessage,
  res: ServerResponse,
  served: ServedNar | undefined,
  contentType = "application/x-nix-nar",
): RouteOutcome | Promise<RouteOutcome> {
  if (served === undefined) throw notFound("no such NAR here (the path is gone or changed)");
  const size = served.narSize;
  // The URL names the content: the NAR hash is a strong validator.
  const etag = `"${served.narHash}"`;
  const ifRange = req.headers["if-range"];
  const range = evaluateRange(req.headers.range, size, {
    // Repeated If-Range headers cannot match a single validator: ignore the range.
    ifRange: Array.isArray(ifRange) ? "" : ifRange,
    etag,
  });
  if (range.kind === "unsatisfiable") {
    throw new HttpError(416, `the range is outside the ${size}-byte NAR`, {
      headers: { "Content-Range": `bytes */${size}` },
    });
  }
  const partial = range.kind === "partial";
  const length = partial ? range.length : size;
  const headers = [
    "Content-Type",
    contentType,
    "Content-Length",
    String(length),
    "Accept-Ranges",
    "bytes",
    "ETag",
    etag,
    "Cache-Control",
    NAR_CACHE_CONTROL,
  ];
  if (partial)
    headers.push("Content-Range", `bytes ${range.start}-${range.start + length - 1}/${size}`);
  const status = partial ? 206 : 200;
  const start = (): RouteOutcome | Promise<RouteOutcome> => {
    // Never more bytes than announced: Node throws instead of corrupting the connection.
    res.strictContentLength = true;
    res.writeHead(status, headers);
    if (req.method === "HEAD") {
      res.end();
      return { status, bytes: 0 };
    }
    const outcome = { status, bytes: length };
    const sent = served.send(res, partial ? { start: range.start, length } : undefined);
    return sent === undefined ? outcome : sent.then(() => outcome);
  };
  if (req.method !== "HEAD" && served.ready !== undefined) return served.ready().then(start);
  return start();
}

export interface StoreRoutesOptions {
  chain: ResolverChain;
  /** URL prefix ending in `/`: `/` for clients, `/local/` for peers. */
  prefix?: string;
  /** Prefix of the route names (`local-` gives `local-narinfo`). */
  namePrefix?: string;
  lookup?: LookupOptions;
  /** Compressed NARs: narinfos (GET) name them, `.nar<extension>` serves them. */
  compression?: NarCompression | undefined;
}

/** The narinfo and NAR routes over a resolver chain. */
export function storeRoutes(options: StoreRoutesOptions): Route[] {
  const { chain, compression } = options;
  const prefix = options.prefix ?? "/";
  const names = options.namePrefix ?? "";
  const lookup = options.lookup ?? {};
  return [
    {
      name: `${names}narinfo`,
      methods: READ,
      match: narInfoPath(prefix),
      handle(req, res, params) {
        const hashPart = params[0] ?? "";
        const served = chain.narInfo(hashPart, lookup);
        // HEAD only asks whether the path is here: it never waits for a compression.
        if (compression !== undefined && req.method === "GET") {
          return Promise.resolve(served).then(async (s) =>
            sendNarInfo(
              req,
              res,
              hashPart,
              s === undefined ? s : await compression.narInfo(s, hashPart, lookup),
            ),
          );
        }
        if (isPromise(served)) return served.then((s) => sendNarInfo(req, res, hashPart, s));
        return sendNarInfo(req, res, hashPart, served);
      },
    },
    {
      name: `${names}nar`,
      methods: READ,
      match: narPath(prefix),
      handle(req, res, params) {
        const served = chain.nar(params[0] ?? "", params[1] ?? "", lookup);
        if (isPromise(served)) return served.then((s) => sendNar(req, res, s));
        return sendNar(req, res, served);
      },
    },
    ...(compression === undefined
      ? []
      : [
          {
            name: `${names}nar-compressed`,
            methods: READ,
            match: narPath(prefix, `.nar${compression.extension}`),
            async handle(req, res, params) {
              const served = await compression.nar(params[0] ?? "", params[1] ?? "", lookup);
              return sendNar(req, res, served, "application/zstd");
            },
          } satisfies Route,
        ]),
  ];
}

function sendListing(
  req: IncomingMessage,
  res: ServerResponse,
  hashPart: string,
  listing: Buffer | undefined,
): RouteOutcome {
  if (listing === undefined) throw notFound(`no NAR listing for the hash ${hashPart} here`);
  return sendBody(req, res, 200, "application/json", listing);
}

/**
 * `GET /<hash>.ls`: Nix's NAR listing of a path served from this host (the
 * store or the NAR cache; never asked of peers).
 */
export function listingRoute(chain: ResolverChain): Route {
  return {
    name: "listing",
    methods: READ,
    match: listingPath("/"),
    handle(req, res, params) {
      const hashPart = params[0] ?? "";
      const listing = chain.listing(hashPart, { localOnly: true });
      if (isPromise(listing)) return listing.then((l) => sendListing(req, res, hashPart, l));
      return sendListing(req, res, hashPart, listing);
    },
  };
}

/** `/log/<hash>-<name>.drv`: the derivation's base name; anything else is not ours (404). */
function logPath(candidate: string): readonly string[] | undefined {
  const prefix = "/log/";
  if (!candidate.startsWith(prefix) || !candidate.endsWith(".drv")) return undefined;
  const name = candidate.slice(prefix.length);
  try {
    parseStorePathBaseName(name);
  } catch (err) {
    if (err instanceof OgygiaError) return undefined;
    throw err;
  }
  return [name];
}

/**
 * `GET /log/<drv base name>`: the build log of a derivation whose output is
 * served here, as plain text (what `nix log --store http://...` prints).
 */
export function buildLogRoute(
  buildLog: (drvBaseName: string) => Promise<Buffer | undefined>,
): Route {
  return {
    name: "log",
    methods: READ,
    match: logPath,
    async handle(req, res, params) {
      const name = params[0] ?? "";
      const log = await buildLog(name);
      if (log === undefined) throw notFound(`no build log of ${name} here`);
      return sendBody(req, res, 200, "text/plain; charset=utf-8", log);
    },
  };
}

export interface CoreRoutesOptions {
  chain: ResolverChain;
  metrics: HttpMetrics;
  storeDir: string;
  priority: number;
  compression?: NarCompression | undefined;
  /** `/metrics` from elsewhere than `metrics` alone (a primary adds its workers' up). */
  renderMetrics?: (() => Promise<{ contentType: string; body: string }>) | undefined;
}

/** Everything a single node serves: cache info, narinfo, NAR, metrics. */
export function coreRoutes(options: CoreRoutesOptions): Route[] {
  const cacheInfo = Buffer.from(
    renderNixCacheInfo({
      storeDir: options.storeDir,
      wantMassQuery: true,
      priority: options.priority,
    }),
  );
  return [
    {
      name: "cache-info",
      methods: READ,
      match: exactPath("/nix-cache-info"),
      handle: (req, res) => sendBody(req, res, 200, "text/x-nix-cache-info", cacheInfo),
    },
    ...storeRoutes({ chain: options.chain, compression: options.compression }),
    listingRoute(options.chain),
    {
      name: "metrics",
      methods: READ,
      match: exactPath("/metrics"),
      async handle(req, res) {
        const { contentType, body } = await (options.renderMetrics ?? options.metrics.render)();
        return sendBody(req, res, 200, contentType, Buffer.from(body));
      },
    },
  ];
}
