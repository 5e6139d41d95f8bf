/**
 * Peers that lie, and peers that die mid-transfer. Fake peers (small HTTP
 * servers in the test) answer for real store paths with: a narinfo signed
 * by a key C does not trust, a narinfo for another store path than the one
 * asked, a NAR whose bytes do not match its narinfo, and NARs cut off part
 * way. Nothing wrong may reach a real Nix client's store or C's NAR cache;
 * a NAR cut off at one peer continues from another.
 */

import { readdir } from "node:fs/promises";
import http from "node:http";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  realPath,
  signedNarInfo,
  startFakePeer,
  type FakePeer,
  type RealPath,
} from "./helpers/fake-peer.js";
import {
  httpRequest,
  makeLargeTree,
  startIrisd,
  stopAllIrisd,
  type IrisdProcess,
} from "./helpers/irisd.js";
import {
  addToStore,
  buildClosure,
  generateKeys,
  makeChrootStore,
  nixVerify,
  nixCopy,
  runNix,
  uniqueSalt,
  type TestKeys,
} from "./helpers/nix.js";
import { removeDir, tempDir, waitFor } from "./helpers/process.js";

let dir: string;
let trusted: TestKeys;
let untrusted: TestKeys;
let unsignedPath: RealPath;
let wrongPath: RealPath;
let otherPath: RealPath;
let corruptPath: RealPath;
let failoverPath: RealPath;
let liar: FakePeer;
let halfA: FakePeer;
let halfB: FakePeer;
let nodeC: IrisdProcess;
let cacheDir: string;

/** A GET read to the end or to the connection's death. */
function fetchRaw(
  url: string,
): Promise<{ status: number; declared: number; received: number; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      let received = 0;
      res.on("data", (chunk: Buffer) => {
        received += chunk.length;
      });
      const done = (): void => {
        resolve({
          status: res.statusCode ?? 0,
          declared: Number(res.headers["content-length"]),
          received,
          complete: res.complete,
        });
      };
      res.on("end", done);
      res.on("error", done);
      res.on("aborted", done);
    });
    req.on("error", reject);
  });
}

async function narUrl(hashPart: string): Promise<string> {
  const res = await httpRequest(`${nodeC.url}/${hashPart}.narinfo`);
  expect(res.status).toBe(200);
  const url = /^URL: (.*)$/m.exec(res.body.toString("utf8"))?.[1];
  if (url === undefined) throw new Error("no URL");
  return `${nodeC.url}/${url}`;
}

async function cacheNames(): Promise<string[]> {
  return readdir(cacheDir);
}

async function notInClientStore(client: string, storePath: string): Promise<void> {
  const result = await runNix("nix", ["path-info", "--store", client, storePath], {
    allowFailure: true,
  });
  expect(result.code).not.toBe(0);
}

function copyThroughC(storePath: string, name: string): ReturnType<typeof nixCopy> {
  return nixCopy({
    from: nodeC.url,
    to: path.join(dir, `client-${name}`),
    paths: [storePath],
    trustedPublicKeys: [trusted.publicKey],
    cacheDir: path.join(dir, `xdg-${name}`),
    allowFailure: true,
  });
}

beforeAll(async () => {
  dir = await tempDir("iris-p2p-lying");
  [trusted, untrusted] = await Promise.all([
    generateKeys(dir, "p2p-trusted-1"),
    generateKeys(dir, "p2p-untrusted-1"),
  ]);
  const closure = await buildClosure(dir, uniqueSalt("p2p-lying"));
  const big = async (name: string): Promise<string> => {
    const tree = path.join(dir, name);
    await makeLargeTree(tree, { files: 4, fileBytes: 256 * 1024, seed: uniqueSalt(name) });
    return addToStore(tree);
  };
  [unsignedPath, wrongPath, otherPath, corruptPath, failoverPath] = await Promise.all([
    realPath(closure.leaf),
    realPath(closure.mid),
    realPath(closure.top),
    big("corrupt").then(realPath),
    big("failover").then(realPath),
  ]);
  liar = await startFakePeer([
    {
      hashPart: unsignedPath.hashPart,
      narInfo: signedNarInfo(unsignedPath.info, untrusted.secretKey),
      nar: { narHash: unsignedPath.narHash, bytes: unsignedPath.nar, behaviour: { kind: "serve" } },
    },
    {
      // Asked for `wrongPath`, answers (validly signed) for another path.
      hashPart: wrongPath.hashPart,
      narInfo: signedNarInfo(otherPath.info, trusted.secretKey),
      nar: { narHash: otherPath.narHash, bytes: otherPath.nar, behaviour: { kind: "serve" } },
    },
    {
      hashPart: corruptPath.hashPart,
      narInfo: signedNarInfo(corruptPath.info, trusted.secretKey),
      nar: {
        narHash: corruptPath.narHash,
        bytes: corruptPath.nar,
        behaviour: { kind: "corrupt", at: Math.floor(corruptPath.nar.length / 2) },
      },
    },
  ]);
  const dying = (after: number): Parameters<typeof startFakePeer>[0] => [
    {
      hashPart: failoverPath.hashPart,
      narInfo: signedNarInfo(failoverPath.info, trusted.secretKey),
      nar: {
        narHash: failoverPath.narHash,
        bytes: failoverPath.nar,
        behaviour: { kind: "die", after },
      },
    },
  ];
  const size = failoverPath.nar.length;
  halfA = await startFakePeer(dying(Math.floor(size / 3)));
  halfB = await startFakePeer(dying(Math.floor((2 * size) / 3)));
  const storeC = await makeChrootStore([closure.leaf], { root: path.join(dir, "c") });
  cacheDir = path.join(dir, "cache-c");
  nodeC = await startIrisd({
    storeRoot: storeC.root,
    peers: [liar.url, halfA.url, halfB.url],
    trustedKeys: [trusted.publicKey],
    cache: { dir: cacheDir },
  });
  // C's own store has the leaf unsigned (not serveable): it must come from peers or not at all.
  expect((await httpRequest(`${nodeC.url}/local/${unsignedPath.hashPart}.narinfo`)).status).toBe(
    404,
  );
}, 180_000);

afterAll(async () => {
  await stopAllIrisd();
  await liar.stop();
  await halfA.stop();
  await halfB.stop();
  await removeDir(dir);
});

describe("a lying peer", () => {
  it("a narinfo signed by an untrusted key is refused, logged with the peer, and never reaches Nix", async () => {
    const res = await httpRequest(`${nodeC.url}/${unsignedPath.hashPart}.narinfo`);
    expect(res.status).toBe(404);
    const warning = nodeC.logs().find((l) => l.msg === "peer answer rejected");
    expect(warning).toMatchObject({ peer: liar.url, reason: "untrusted" });
    const copy = await copyThroughC(unsignedPath.storePath, "untrusted");
    expect(copy.code).not.toBe(0);
    await notInClientStore(path.join(dir, "client-untrusted"), unsignedPath.storePath);
    // C never asked for the NAR, and cached nothing.
    expect(liar.requests.some((r) => r.url.includes("/nar/"))).toBe(false);
    expect((await cacheNames()).some((n) => n.startsWith(unsignedPath.hashPart))).toBe(false);
  });

  it("a narinfo for another store path than the one asked is refused", async () => {
    const res = await httpRequest(`${nodeC.url}/${wrongPath.hashPart}.narinfo`);
    expect(res.status).toBe(404);
    expect(
      nodeC.logs().some((l) => l.msg === "peer answer rejected" && l.reason === "wrong-path"),
    ).toBe(true);
    const copy = await copyThroughC(wrongPath.storePath, "wrong-path");
    expect(copy.code).not.toBe(0);
    await notInClientStore(path.join(dir, "client-wrong-path"), wrongPath.storePath);
    await notInClientStore(path.join(dir, "client-wrong-path"), otherPath.storePath);
  });

  it("a NAR whose bytes do not match is cut short for the client and not cached", async () => {
    const url = await narUrl(corruptPath.hashPart);
    const raw = await fetchRaw(url);
    expect(raw.status).toBe(200);
    expect(raw.declared).toBe(corruptPath.nar.length);
    // The last byte is held back until the whole NAR verified: it never comes.
    expect(raw.complete).toBe(false);
    expect(raw.received).toBeLessThan(raw.declared);

    const copy = await copyThroughC(corruptPath.storePath, "corrupt");
    expect(copy.code).not.toBe(0);
    await notInClientStore(path.join(dir, "client-corrupt"), corruptPath.storePath);
    await waitFor("C's temporary files to go", async () =>
      (await cacheNames()).some((n) => n.startsWith(".tmp-")) ? undefined : true,
    );
    expect((await cacheNames()).some((n) => n.startsWith(corruptPath.hashPart))).toBe(false);
    const metrics = (await httpRequest(`${nodeC.url}/metrics`)).body.toString("utf8");
    expect(metrics).toMatch(/^irisd_peer_nar_fetch_failures_total\{reason="mismatch"\} [1-9]/m);
    expect(nodeC.logs().filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe("a peer dying mid-stream", () => {
  it("the download continues from another provider with a Range request, and Nix gets the right path", async () => {
    const copy = await copyThroughC(failoverPath.storePath, "failover");
    expect(copy.code, copy.stderr).toBe(0);
    await nixVerify({
      store: path.join(dir, "client-failover"),
      paths: [failoverPath.storePath],
      trustedPublicKeys: [trusted.publicKey],
      recursive: false,
    });
    const ranged = [...halfA.requests, ...halfB.requests].filter((r) => r.range !== undefined);
    expect(ranged.length).toBeGreaterThan(0);
    expect(ranged[0]?.range).toMatch(/^bytes=[1-9][0-9]*-$/);
    await waitFor("the NAR in C's cache", async () =>
      (await cacheNames()).some((n) => n.startsWith(failoverPath.hashPart) && n.endsWith(".entry"))
        ? true
        : undefined,
    );
    const metrics = (await httpRequest(`${nodeC.url}/metrics`)).body.toString("utf8");
    expect(metrics).toMatch(/^irisd_peer_nar_failovers_total [1-9]/m);
  });
});
