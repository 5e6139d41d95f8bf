import { Readable } from "node:stream";

import { describe, expect, it } from "vitest";

import { buildBloom, bloomEtag, serializeBloom } from "./bloom.js";
import type { Logger } from "../../log/index.js";
import {
  hashPartOf,
  narInfoText,
  narOfFile,
  signedInfo,
  testKey,
} from "../../../test/support/p2p.js";
import type { PeerHttp, PeerRequest, PeerResponse } from "./peer-http.js";
import { createPeerSet, type PeerSet } from "./peers.js";

const STORE = "/nix/store";
const { secret, trusted } = testKey("peers-test-1");
const stranger = testKey("stranger").secret;

interface Logged {
  level: string;
  msg: string;
  fields: object;
}

function logger(lines: Logged[]): Logger {
  const at =
    (level: string) =>
    (fields: object, msg: string): void => {
      lines.push({ level, msg, fields });
    };
  return {
    fatal: at("fatal"),
    error: at("error"),
    warn: at("warn"),
    info: at("info"),
    debug: at("debug"),
    isLevelEnabled: () => true,
  };
}

type Answer = { status: number; headers?: Record<string, string>; body?: Buffer | string } | "hang";

/** A fake network: `handler(peer URL, request)` answers every request. */
function fakeHttp(
  handler: (url: string, req: PeerRequest) => Answer,
): PeerHttp & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    request(base, req) {
      log.push(
        `${base.url} ${req.path}${req.headers?.["if-none-match"] === undefined ? "" : " (conditional)"}`,
      );
      const answer = handler(base.url, req);
      if (answer === "hang") {
        return new Promise((_, reject) =>
          setTimeout(() => {
            reject(new Error("timed out"));
          }, req.timeoutMs),
        );
      }
      const body = Buffer.from(answer.body ?? "");
      const response: PeerResponse = {
        status: answer.status,
        headers: answer.headers ?? {},
        body: Readable.from([body]),
        readBody: () => Promise.resolve(body),
        discard: () => undefined,
      };
      return Promise.resolve(response);
    },
    close: () => Promise.resolve(),
  };
}

const pathOnA = signedInfo(narOfFile(Buffer.from("on a")), secret);
const pathOnB = signedInfo(narOfFile(Buffer.from("on b")), secret);
const hashA = hashPartOf(pathOnA.storePath);
const hashB = hashPartOf(pathOnB.storePath);

function filterOf(hashes: string[]): { body: Buffer; etag: string } {
  const filter = buildBloom(hashes);
  return { body: serializeBloom(filter), etag: bloomEtag(filter) };
}

function peerSet(
  http: PeerHttp,
  urls: string[],
  lines: Logged[] = [],
  now?: () => number,
): PeerSet {
  return createPeerSet({
    urls,
    http,
    trusted,
    storeDir: STORE,
    peerTtlMs: 60_000,
    log: logger(lines),
    now,
  });
}

async function settle(peers: PeerSet): Promise<void> {
  for (let i = 0; i < 100 && peers.peers.some((p) => p.refreshing !== undefined); i++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe("looking a path up through peers", () => {
  it("asks only the peers whose filter may hold it, and verifies the answer", async () => {
    const filters = { "http://a": filterOf([hashA]), "http://b": filterOf([hashB]) };
    const http = fakeHttp((url, req) => {
      const f = filters[url as keyof typeof filters];
      if (req.path === "bloom") return { status: 200, headers: { etag: f.etag }, body: f.body };
      if (url === "http://a" && req.path === `local/${hashA}.narinfo`) {
        return { status: 200, body: narInfoText(pathOnA) };
      }
      return { status: 404 };
    });
    const peers = peerSet(http, ["http://a", "http://b"]);
    peers.start();
    await settle(peers);
    const answer = await peers.lookup(hashA, { deadline: performance.now() + 1000 });
    expect(answer?.peer.label).toBe("http://a");
    expect(answer?.verdict.info.storePath).toBe(pathOnA.storePath);
    expect(http.log.filter((l) => l.includes(".narinfo"))).toEqual([
      `http://a local/${hashA}.narinfo`,
    ]);
    await peers.close();
  });

  it("asks a peer directly while it has no filter (its index is still building)", async () => {
    const http = fakeHttp((_url, req) => {
      if (req.path === "bloom") return { status: 503, headers: { "retry-after": "1" } };
      return { status: 200, body: narInfoText(pathOnB) };
    });
    const peers = peerSet(http, ["http://b"]);
    peers.start();
    await settle(peers);
    const answer = await peers.lookup(hashB, { deadline: performance.now() + 1000 });
    expect(answer?.verdict.info.storePath).toBe(pathOnB.storePath);
    await peers.close();
  });

  it("revalidates a filter older than a few seconds before saying nobody has it", async () => {
    let clock = 0;
    let current = filterOf([hashA]);
    const http = fakeHttp((_url, req) => {
      if (req.path === "bloom") {
        if (req.headers?.["if-none-match"] === current.etag) return { status: 304 };
        return { status: 200, headers: { etag: current.etag }, body: current.body };
      }
      if (req.path === `local/${hashB}.narinfo`) return { status: 200, body: narInfoText(pathOnB) };
      return { status: 404 };
    });
    const peers = peerSet(http, ["http://a"], [], () => clock);
    peers.start();
    await settle(peers);
    // B's path arrives on the peer after its filter was fetched.
    current = filterOf([hashA, hashB]);
    // A fresh filter is trusted as it is: an immediate "nobody".
    expect(await peers.lookup(hashB, { deadline: clock + 1000 })).toBeUndefined();
    expect(http.log.filter((l) => l.includes("conditional"))).toEqual([]);
    clock += 3000;
    const answer = await peers.lookup(hashB, { deadline: clock + 1000 });
    expect(answer?.verdict.info.storePath).toBe(pathOnB.storePath);
    expect(http.log).toContain("http://a bloom (conditional)");
    await peers.close();
  });

  it("answers nobody by the deadline when a peer never answers, then skips it while it backs off", async () => {
    const lines: Logged[] = [];
    const http = fakeHttp(() => "hang");
    const peers = peerSet(http, ["http://blackhole"], lines);
    const started = performance.now();
    expect(await peers.lookup(hashA, { deadline: started + 100 })).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1000);
    // The request itself times out at the deadline too; then the peer backs off.
    for (let i = 0; i < 100 && !lines.some((l) => l.level === "warn"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(lines.some((l) => l.level === "warn" && l.msg.startsWith("peer unreachable"))).toBe(
      true,
    );
    const asked = http.log.length;
    expect(await peers.lookup(hashA, { deadline: performance.now() + 100 })).toBeUndefined();
    expect(http.log.length).toBe(asked);
    await peers.close();
  });

  it("refuses an answer signed by an untrusted key, and warns naming the peer", async () => {
    const lines: Logged[] = [];
    const forged = { ...pathOnA, sigs: [] as string[] };
    const bySomeoneElse = signedInfo(narOfFile(Buffer.from("on a")), stranger);
    const http = fakeHttp((_url, req) => {
      if (req.path === "bloom") return { status: 404 };
      return {
        status: 200,
        body: narInfoText({ ...forged, sigs: bySomeoneElse.sigs }),
      };
    });
    const peers = peerSet(http, ["http://user:secret@liar:1"], lines);
    expect(await peers.lookup(hashA, { deadline: performance.now() + 1000 })).toBeUndefined();
    const warning = lines.find((l) => l.msg === "peer answer rejected");
    expect(warning?.fields).toMatchObject({ peer: "http://***@liar:1", reason: "untrusted" });
    expect(JSON.stringify(lines)).not.toContain("secret@");
    await peers.close();
  });

  it("collects every verified provider for /providers", async () => {
    const http = fakeHttp((url, req) => {
      if (req.path === "bloom") return { status: 404 };
      return url === "http://c" ? { status: 404 } : { status: 200, body: narInfoText(pathOnA) };
    });
    const peers = peerSet(http, ["http://a", "http://b", "http://c"]);
    const answers = await peers.providers(hashA, performance.now() + 1000);
    expect(answers.map((a) => a.peer.label).sort()).toEqual(["http://a", "http://b"]);
    expect(answers[0]?.verdict.signers).toEqual(["peers-test-1"]);
    await peers.close();
  });
});

describe("peers that come and go (the fleet registry)", () => {
  it("keeps the peers still listed, fetches a newcomer's filter at once, drops the others", async () => {
    const http = fakeHttp((url, req) => {
      if (req.path === "bloom")
        return { status: 200, body: filterOf([url === "http://b" ? hashB : hashA]).body };
      return url === "http://b" && req.path === `local/${hashB}.narinfo`
        ? { status: 200, body: narInfoText(pathOnB) }
        : { status: 404 };
    });
    const peers = peerSet(http, ["http://a"]);
    peers.start();
    await settle(peers);
    const a = peers.peers[0];
    expect(a?.filter).toBeDefined();
    expect(peers.setUrls(["http://a", "http://b"])).toEqual({ added: ["http://b"], removed: [] });
    expect(peers.peers[0]).toBe(a);
    await settle(peers);
    expect(http.log).toContain("http://b bloom");
    expect(peers.peers[1]?.filter).toBeDefined();
    const found = await peers.lookup(hashB, { deadline: performance.now() + 1000 });
    expect(found?.peer.label).toBe("http://b");
    expect(peers.setUrls(["http://b"])).toEqual({ added: [], removed: ["http://a"] });
    expect(peers.peers.map((p) => p.label)).toEqual(["http://b"]);
    expect(peers.setUrls(["http://b"])).toEqual({ added: [], removed: [] });
    await peers.close();
  });
});
