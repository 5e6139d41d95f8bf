/**
 * The peer-to-peer endpoints besides `/local/...`:
 *
 * - `GET /bloom`: the local filter in its wire format (docs/bloom-format.md),
 *   a strong `ETag`, `If-None-Match` → 304, and 503 with `Retry-After`
 *   until the first index build completes.
 * - `GET /providers/<hash>`: who serves a path, `{hash, local, providers}`,
 *   each provider confirmed by its verified narinfo.
 * - `POST /rescan`: index named store paths (or the whole store) now;
 *   loopback clients only.
 */

import type { IncomingMessage } from "node:http";
import { isIPv4 } from "node:net";

import { OgygiaError, errorMessage, redactUrl } from "../../core/index.js";
import { formatHash, isHashPart, parseStorePath } from "../../nix/index.js";
import type { ProvidersAnswer, RescanAnswer } from "../index.js";
import {
  HttpError,
  badRequest,
  clientAddress,
  sendBody,
  type ResolverChain,
  type Route,
} from "../http/index.js";
import type { LocalIndex } from "./local-index.js";
import { LOOKUP_DEADLINE_MS, type PeerSet } from "./peers.js";

const READ = ["GET", "HEAD"] as const;
const JSON_TYPE = "application/json";
/** The largest `POST /rescan` body. */
export const MAX_RESCAN_BODY_BYTES = 1024 * 1024;
/** How long `POST /rescan` waits for the first index build before a 503. */
const RESCAN_READY_WAIT_MS = 30_000;

function json(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value)}\n`, "utf8");
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.toLowerCase().startsWith("::ffff:") ? address.slice(7) : address;
  if (isIPv4(v4)) return v4.startsWith("127.");
  return address === "::1" || address === "0:0:0:0:0:0:0:1";
}

/**
 * True when an `If-None-Match` header names `etag` (or is `*`). Entity tags
 * compare weakly, as RFC 9110 §13.1.2 asks for this header.
 */
export function ifNoneMatch(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(",") : header;
  const opaque = etag.replace(/^W\//, "");
  return text
    .split(",")
    .map((tag) => tag.trim())
    .some((tag) => tag === "*" || tag.replace(/^W\//, "") === opaque);
}

/** `GET /bloom`. */
export function bloomRoute(index: LocalIndex): Route {
  return {
    name: "bloom",
    methods: READ,
    match: (path) => (path === "/bloom" ? [] : undefined),
    handle(req, res) {
      const snapshot = index.snapshot();
      if (snapshot === undefined) {
        throw new HttpError(503, "the bloom index is still being built", {
          headers: { "Retry-After": "1" },
        });
      }
      if (ifNoneMatch(req.headers["if-none-match"], snapshot.etag)) {
        res.writeHead(304, ["ETag", snapshot.etag, "Cache-Control", "no-cache"]);
        res.end();
        return { status: 304, bytes: 0 };
      }
      res.writeHead(200, [
        "Content-Type",
        "application/octet-stream",
        "Content-Length",
        String(snapshot.bytes.length),
        "ETag",
        snapshot.etag,
        "Cache-Control",
        "no-cache",
      ]);
      res.end(snapshot.bytes);
      return { status: 200, bytes: req.method === "HEAD" ? 0 : snapshot.bytes.length };
    },
  };
}

/** `/providers/<hash part>`: the hash part; 400 for another single segment. */
function providersPath(path: string): readonly string[] | undefined {
  const prefix = "/providers/";
  if (!path.startsWith(prefix)) return undefined;
  const hashPart = path.slice(prefix.length);
  if (hashPart.includes("/")) return undefined;
  if (!isHashPart(hashPart)) {
    throw badRequest("/providers/ takes a store path hash part: 32 nix32 characters");
  }
  return [hashPart];
}

/** `GET /providers/<hash>`. */
export function providersRoute(options: {
  chain: ResolverChain;
  peers: PeerSet | undefined;
}): Route {
  return {
    name: "providers",
    methods: READ,
    match: providersPath,
    async handle(req, res, params) {
      const hash = params[0] ?? "";
      const deadline = performance.now() + LOOKUP_DEADLINE_MS;
      const [local, answers] = await Promise.all([
        Promise.resolve(options.chain.narInfo(hash, { localOnly: true })),
        options.peers?.providers(hash, deadline) ?? Promise.resolve([]),
      ]);
      const answer: ProvidersAnswer = {
        hash,
        local: local !== undefined,
        providers: answers.map(({ peer, verdict }) => ({
          url: redactUrl(peer.base.url),
          storePath: verdict.info.storePath,
          narHash: formatHash(verdict.info.narHash, "nix32"),
          narSize: verdict.info.narSize,
          signatures: verdict.signers,
        })),
      };
      return sendBody(req, res, 200, JSON_TYPE, json(answer));
    },
  };
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  const tooLarge = (): HttpError => new HttpError(413, `the body is larger than ${limit} bytes`);
  if (declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** The store paths a rescan body names (empty: the whole store); throws 400 saying what is wrong. */
export function parseRescanBody(body: Buffer, storeDir: string): string[] {
  const text = body.toString("utf8");
  if (text.trim() === "") return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badRequest(`the body is not JSON: ${errorMessage(err)}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw badRequest('the body must be a JSON object like {"paths": ["/nix/store/..."]}');
  }
  for (const key of Object.keys(value)) {
    if (key !== "paths") throw badRequest(`unknown field ${JSON.stringify(key)} (only "paths")`);
  }
  const paths = (value as { paths?: unknown }).paths;
  if (paths === undefined) return [];
  if (!Array.isArray(paths)) throw badRequest('"paths" must be an array of store paths');
  return paths.map((item: unknown, i) => {
    if (typeof item !== "string") throw badRequest(`paths[${i}] is not a string`);
    try {
      return parseStorePath(item, storeDir).path;
    } catch (err) {
      if (err instanceof OgygiaError) throw badRequest(`paths[${i}]: ${err.message}`);
      throw err;
    }
  });
}

/** `POST /rescan`. */
export function rescanRoute(options: { index: LocalIndex; storeDir: string }): Route {
  return {
    name: "rescan",
    methods: ["POST"],
    match: (path) => (path === "/rescan" ? [] : undefined),
    async handle(req, res) {
      if (!isLoopbackAddress(clientAddress(req))) {
        throw new HttpError(403, "rescan is only allowed from this host (loopback)");
      }
      const paths = parseRescanBody(await readBody(req, MAX_RESCAN_BODY_BYTES), options.storeDir);
      if (!options.index.ready) {
        let timer: NodeJS.Timeout | undefined;
        const ready = await Promise.race([
          options.index.whenReady().then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => {
              resolve(false);
            }, RESCAN_READY_WAIT_MS);
          }),
        ]);
        clearTimeout(timer);
        if (!ready) {
          throw new HttpError(503, "the bloom index is still being built", {
            headers: { "Retry-After": "5" },
          });
        }
      }
      const answer: RescanAnswer = await options.index.rescan(paths);
      return sendBody(req, res, 200, JSON_TYPE, json(answer));
    },
  };
}
