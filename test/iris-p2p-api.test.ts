/**
 * The HTTP contract of the peer-to-peer endpoints, against real daemons:
 * `GET /bloom` (wire format, ETag, 304), `GET /providers/<hash>` (each
 * provider confirmed by its verified narinfo) and `POST /rescan` (named
 * paths or the whole store, errors, size limit). The loopback-only rule of
 * `/rescan` is unit-tested (`isLoopbackAddress`): every address a test can
 * reach the daemon from is loopback.
 */

import { randomBytes } from "node:crypto";
import http from "node:http";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { parseBloom } from "../src/iris/p2p/index.js";
import { encodeNix32 } from "../src/nix/index.js";
import { httpRequest, startIrisd, stopAllIrisd, type IrisdProcess } from "./helpers/irisd.js";
import {
  hashPartOf,
  buildClosure,
  makeChrootStore,
  pathInfoJson,
  runNix,
  signedClosureStore,
  uniqueSalt,
  type ChrootStore,
  type TestClosure,
  type TestKeys,
} from "./helpers/nix.js";
import { removeDir, tempDir, waitFor } from "./helpers/process.js";

function post(
  url: string,
  body: string | Buffer | undefined,
): Promise<{ status: number; text: string; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
    });
    // A refused large body may be cut off by the server before it is all sent.
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE" && err.code !== "ECONNRESET") reject(err);
    });
    req.end(body);
  });
}

let dir: string;
let keys: TestKeys;
let closure: TestClosure;
let unsigned: TestClosure;
let storeB: ChrootStore;
let nodeB: IrisdProcess;
let nodeC: IrisdProcess;

beforeAll(async () => {
  dir = await tempDir("iris-p2p-api");
  unsigned = await buildClosure(dir, uniqueSalt("p2p-api-unsigned"));
  ({
    closure,
    keys,
    store: storeB,
  } = await signedClosureStore(dir, "p2p-api", {
    extraPaths: [unsigned.leaf],
  }));
  const storeC = await makeChrootStore([unsigned.mid], { root: path.join(dir, "c") });
  nodeB = await startIrisd({ storeRoot: storeB.root });
  nodeC = await startIrisd({
    storeRoot: storeC.root,
    peers: [nodeB.url],
    trustedKeys: [keys.publicKey],
    cache: { dir: path.join(dir, "cache-c") },
  });
}, 180_000);

afterAll(async () => {
  await stopAllIrisd();
  await removeDir(dir);
});

describe("GET /bloom", () => {
  it("serves the filter in its wire format with a strong ETag, and 304 when unchanged", async () => {
    const res = await waitFor("B's index", async () => {
      const r = await httpRequest(`${nodeB.url}/bloom`);
      return r.status === 200 ? r : undefined;
    });
    const etag = res.headers.etag ?? "";
    expect(etag).toMatch(/^"[^"]+"$/);
    const filter = parseBloom(res.body, { maxBytes: 64 * 1024 * 1024 });
    for (const p of closure.paths) expect(filter.has(hashPartOf(p))).toBe(true);
    const again = await httpRequest(`${nodeB.url}/bloom`, { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
    expect(again.headers.etag).toBe(etag);
    const head = await httpRequest(`${nodeB.url}/bloom`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers["content-length"])).toBe(res.body.length);
  });
});

describe("GET /providers/<hash>", () => {
  it("lists each peer that serves the path, confirmed by its verified narinfo", async () => {
    const [info] = await pathInfoJson([closure.top], { store: storeB.root });
    const res = await httpRequest(`${nodeC.url}/providers/${hashPartOf(closure.top)}`);
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/json");
    const body = JSON.parse(res.body.toString("utf8")) as unknown;
    expect(body).toEqual({
      hash: hashPartOf(closure.top),
      local: false,
      providers: [
        {
          url: nodeB.url,
          storePath: closure.top,
          narHash: expect.stringMatching(/^sha256:[0-9a-z]{52}$/) as unknown,
          narSize: info?.narSize,
          signatures: [keys.name],
        },
      ],
    });
  });

  it("says local for a path the daemon serves itself, and nobody for a path nobody has", async () => {
    const own = JSON.parse(
      (await httpRequest(`${nodeB.url}/providers/${hashPartOf(closure.leaf)}`)).body.toString(),
    ) as { local: boolean; providers: unknown[] };
    expect(own).toEqual({ hash: hashPartOf(closure.leaf), local: true, providers: [] });
    const nobody = encodeNix32(randomBytes(20));
    const res = await httpRequest(`${nodeC.url}/providers/${nobody}`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ hash: nobody, local: false, providers: [] });
  });

  it("does not list a peer whose path is not trusted (unsigned on B)", async () => {
    const res = await httpRequest(`${nodeC.url}/providers/${hashPartOf(unsigned.leaf)}`);
    expect(JSON.parse(res.body.toString())).toEqual({
      hash: hashPartOf(unsigned.leaf),
      local: false,
      providers: [],
    });
  });

  it("answers 400 for something that is not a hash part, 404 for deeper paths", async () => {
    expect((await httpRequest(`${nodeC.url}/providers/not-a-hash`)).status).toBe(400);
    expect((await httpRequest(`${nodeC.url}/providers/${"e".repeat(32)}`)).status).toBe(400);
    expect((await httpRequest(`${nodeC.url}/providers/a/b`)).status).toBe(404);
    const valid = `${nodeC.url}/providers/${hashPartOf(closure.top)}`;
    expect((await httpRequest(valid, { method: "POST" })).status).toBe(405);
  });
});

describe("POST /rescan", () => {
  it("indexes named paths at once and says which are not serveable or missing", async () => {
    const missing = `/nix/store/${encodeNix32(randomBytes(20))}-missing`;
    const res = await post(
      `${nodeB.url}/rescan`,
      JSON.stringify({ paths: [closure.top, unsigned.leaf, missing] }),
    );
    expect(res.status, res.text).toBe(200);
    expect(res.json).toMatchObject({
      notServeable: [unsigned.leaf],
      missing: [missing],
    });
    const result = res.json as { indexed: number; added: number };
    expect(result.indexed).toBeGreaterThanOrEqual(closure.paths.length);
    expect(result.added).toBe(0); // the index had found closure.top by itself
  });

  it("makes a path signed just now appear in /bloom as soon as it answers", async () => {
    await runNix("nix", [
      "store",
      "sign",
      "--store",
      storeB.root,
      "--key-file",
      keys.secretKeyFile,
      unsigned.leaf,
    ]);
    const res = await post(`${nodeB.url}/rescan`, JSON.stringify({ paths: [unsigned.leaf] }));
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ notServeable: [], missing: [] });
    const bloom = await httpRequest(`${nodeB.url}/bloom`);
    const filter = parseBloom(bloom.body, { maxBytes: 64 * 1024 * 1024 });
    expect(filter.has(hashPartOf(unsigned.leaf))).toBe(true);
  });

  it("with no body or an empty list, compares the whole store", async () => {
    for (const body of [undefined, "", "{}", '{"paths": []}']) {
      const res = await post(`${nodeB.url}/rescan`, body);
      expect(res.status, res.text).toBe(200);
      expect(res.json).toMatchObject({ added: 0, notServeable: [], missing: [] });
    }
  });

  it("refuses bad bodies with 400 naming the problem, and large ones with 413", async () => {
    const cases: [string, RegExp][] = [
      ["{not json", /not JSON/],
      ["[1, 2]", /JSON object/],
      ['{"paths": "x"}', /must be an array/],
      ['{"paths": [1]}', /paths\[0\] is not a string/],
      ['{"paths": ["/etc/passwd"]}', /paths\[0\].*\/etc\/passwd/],
      [`{"paths": ["${closure.top}/bin"]}`, /paths\[0\]/],
      ['{"path": []}', /unknown field "path"/],
    ];
    for (const [body, message] of cases) {
      const res = await post(`${nodeB.url}/rescan`, body);
      expect(res.status, body).toBe(400);
      expect(res.text).toMatch(message);
    }
    const big = Buffer.alloc(1024 * 1024 + 1, 0x20);
    expect((await post(`${nodeB.url}/rescan`, big)).status).toBe(413);
    expect((await httpRequest(`${nodeB.url}/rescan`)).status).toBe(405);
    // The daemon is fine afterwards.
    expect((await httpRequest(`${nodeB.url}/nix-cache-info`)).status).toBe(200);
  });
});

describe("negative answers", () => {
  it("a 404 keeps the connection open for the next request (Nix asks for many absent paths)", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const reused: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        const hash = encodeNix32(randomBytes(20));
        await new Promise<void>((resolve, reject) => {
          const req = http.get(`${nodeB.url}/${hash}.narinfo`, { agent }, (res) => {
            expect(res.statusCode).toBe(404);
            expect(res.headers.connection).toBe("keep-alive");
            res.resume();
            res.on("end", resolve);
          });
          req.on("error", reject);
          req.on("socket", () => {
            reused.push(req.reusedSocket);
          });
        });
      }
      expect(reused).toEqual([false, true, true]);
    } finally {
      agent.destroy();
    }
  });
});
