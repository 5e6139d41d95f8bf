/**
 * Fake irisd peers for the peer-to-peer tests, on 127.0.0.1 with a
 * kernel-chosen port:
 *
 * - `startFakePeer`: a small HTTP server speaking the peer protocol
 *   (`/bloom`, `/local/<hash>.narinfo`, `/local/nar/...`) whose answers the
 *   test chooses: narinfos signed by any key (or lying about the path), NARs
 *   with wrong bytes, or NARs that die part-way unless asked for a range.
 * - `startBlackhole`: accepts connections and never answers.
 *
 * Every request is recorded for assertions.
 */

import { createHash } from "node:crypto";
import http from "node:http";
import net from "node:net";

import { buildBloom, bloomEtag, serializeBloom } from "../../src/iris/p2p/index.js";
import {
  formatHash,
  hashFromDigest,
  parseHash,
  parseSecretKey,
  renderNarInfo,
  signPath,
  type NarInfo,
} from "../../src/nix/index.js";
import { hashPartOf, nixDump, pathInfoJson } from "./nix.js";

/** How a fake peer serves a NAR. */
export type NarBehaviour =
  /** The right bytes, honouring `Range: bytes=N-`. */
  | { kind: "serve" }
  /** Same length, one byte flipped at `at`. */
  | { kind: "corrupt"; at: number }
  /** From offset 0: `after` bytes, then the connection is destroyed. Ranges are served in full. */
  | { kind: "die"; after: number }
  /** Headers, then `chunkBytes` bytes every `everyMs` (a peer below any sane rate). */
  | { kind: "drip"; chunkBytes: number; everyMs: number }
  /** The connection is destroyed before any header. */
  | { kind: "reset" };

export interface FakePath {
  /** The hash part the peer answers for (may differ from the narinfo's StorePath). */
  hashPart: string;
  /** The narinfo text it answers. */
  narInfo: string;
  /** The NAR it serves at `nar/<hashPart>-<narHash>.nar`. */
  nar?: { narHash: string; bytes: Buffer; behaviour: NarBehaviour };
  /** The narinfo answer waits this long (so another peer answers first). */
  narInfoDelayMs?: number;
}

export interface RecordedRequest {
  method: string;
  url: string;
  range: string | undefined;
}

export interface FakePeer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

/** Starts a fake peer serving `paths`. */
export async function startFakePeer(paths: readonly FakePath[]): Promise<FakePeer> {
  const requests: RecordedRequest[] = [];
  const filter = buildBloom(paths.map((p) => p.hashPart));
  const bloom = serializeBloom(filter);
  const etag = bloomEtag(filter);
  const byHash = new Map(paths.map((p) => [p.hashPart, p]));
  const server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    requests.push({ method: req.method ?? "GET", url, range: req.headers.range });
    if (url === "/bloom") {
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, { ETag: etag }).end();
        return;
      }
      res.writeHead(200, { ETag: etag, "Content-Length": bloom.length }).end(bloom);
      return;
    }
    const info = /^\/local\/([0-9a-z]{32})\.narinfo$/.exec(url);
    if (info !== null) {
      const entry = byHash.get(info[1] ?? "");
      if (entry === undefined) {
        res.writeHead(404).end();
        return;
      }
      const answer = (): void => {
        res.writeHead(200, { "Content-Type": "text/x-nix-narinfo" }).end(entry.narInfo);
      };
      if (entry.narInfoDelayMs === undefined) answer();
      else setTimeout(answer, entry.narInfoDelayMs);
      return;
    }
    const nar = /^\/local\/nar\/([0-9a-z]{32})-([0-9a-z]{52})\.nar$/.exec(url);
    const entry = nar === null ? undefined : byHash.get(nar[1] ?? "");
    if (entry?.nar === undefined || entry.nar.narHash !== nar?.[2]) {
      res.writeHead(404).end();
      return;
    }
    serveNar(req, res, entry.nar.bytes, entry.nar.behaviour);
  });
  return {
    ...(await listenOnLoopback(server)),
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}

/** Listens on a free loopback port; the server's URL and port. */
async function listenOnLoopback(server: net.Server): Promise<{ url: string; port: number }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, port };
}

function serveNar(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  bytes: Buffer,
  behaviour: NarBehaviour,
): void {
  if (behaviour.kind === "reset") {
    req.socket.destroy();
    return;
  }
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  const start = range === null ? 0 : Number(range[1]);
  const body = Buffer.from(bytes.subarray(start));
  if (behaviour.kind === "corrupt") {
    const at = behaviour.at - start;
    if (at >= 0 && at < body.length) body[at] = (body[at] ?? 0) ^ 0xff;
  }
  const headers: http.OutgoingHttpHeaders = {
    "Content-Type": "application/x-nix-nar",
    "Content-Length": body.length,
  };
  if (range !== null)
    headers["Content-Range"] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;
  res.writeHead(range === null ? 200 : 206, headers);
  if (behaviour.kind === "drip") {
    let at = 0;
    const timer = setInterval(() => {
      if (at >= body.length || res.destroyed) {
        clearInterval(timer);
        res.end();
        return;
      }
      res.write(body.subarray(at, at + behaviour.chunkBytes));
      at += behaviour.chunkBytes;
    }, behaviour.everyMs);
    res.on("close", () => {
      clearInterval(timer);
    });
    return;
  }
  if (behaviour.kind === "die" && start === 0) {
    res.write(body.subarray(0, behaviour.after), () => {
      // Let the bytes leave before the connection dies.
      setTimeout(() => req.socket.destroy(), 50);
    });
    return;
  }
  res.end(body);
}

/** A server that accepts connections and never answers. */
export async function startBlackhole(): Promise<{
  url: string;
  port: number;
  stop(): Promise<void>;
}> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  return {
    ...(await listenOnLoopback(server)),
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}

/** A real store path's NAR and narinfo fields, from the machine's store. */
export interface RealPath {
  storePath: string;
  hashPart: string;
  nar: Buffer;
  /** nix32, no prefix. */
  narHash: string;
  info: NarInfo;
}

/** Reads a path of the machine's store: its NAR (`nix-store --dump`) and path info. */
export async function realPath(storePath: string): Promise<RealPath> {
  const nar = await nixDump(storePath);
  const [json] = await pathInfoJson([storePath]);
  if (json === undefined) throw new Error(`no path info for ${storePath}`);
  const narHash = hashFromDigest("sha256", createHash("sha256").update(nar).digest());
  if (formatHash(narHash, "sri") !== formatHash(parseHash(json.narHash), "sri")) {
    throw new Error(`nix-store --dump of ${storePath} does not match its NAR hash`);
  }
  const info: NarInfo = {
    storePath,
    url: "unused",
    compression: "none",
    narHash,
    narSize: nar.length,
    references: json.references,
    sigs: [],
    ca: json.ca,
  };
  return {
    storePath,
    hashPart: hashPartOf(storePath),
    nar,
    narHash: formatHash(narHash, "nix32", false),
    info,
  };
}

/** A narinfo for `info`, signed by `secretKey` (`name:base64`), with `URL` as irisd writes it. */
export function signedNarInfo(info: NarInfo, secretKey: string | undefined): string {
  const hashPart = hashPartOf(info.storePath);
  const narHash = formatHash(info.narHash, "nix32", false);
  const sigs = secretKey === undefined ? [] : [signPath(parseSecretKey(secretKey), info)];
  return renderNarInfo({
    ...info,
    url: `nar/${hashPart}-${narHash}.nar`,
    fileHash: info.narHash,
    fileSize: info.narSize,
    sigs,
  });
}
