/**
 * Hostile and malformed requests against a running ogygia-irisd serving a
 * real store: each gets 400, 404, 405, 414, 416 or 431, never a file from
 * outside the store and never a crash. Sent on raw sockets, because HTTP
 * clients normalise exactly the paths these tests need to send.
 */

import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  httpRequest,
  rawRequest,
  startIrisd,
  stopAllIrisd,
  type IrisdProcess,
  type RawResult,
} from "./helpers/irisd.js";
import {
  buildClosure,
  generateKeys,
  makeChrootStore,
  signPaths,
  uniqueSalt,
  type TestClosure,
} from "./helpers/nix.js";
import { removeDir, tempDir } from "./helpers/process.js";

let dir: string;
let closure: TestClosure;
let irisd: IrisdProcess;
let narPath: string;
let narSize: number;

const PASSWD_MARK = "root:";

function get(
  target: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<RawResult> {
  const lines = [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  return rawRequest(irisd.port, `${lines.join("\r\n")}\r\n\r\n`);
}

beforeAll(async () => {
  dir = await tempDir("iris-bad-input");
  closure = await buildClosure(dir, uniqueSalt("iris-bad"));
  const keys = await generateKeys(dir, "iris-bad-1");
  const store = await makeChrootStore(closure.paths, { root: path.join(dir, "store") });
  await signPaths(keys, [closure.top], { store: store.root });
  irisd = await startIrisd({ storeRoot: store.root });
  const narinfo = await httpRequest(
    `${irisd.url}/${path.basename(closure.mid).slice(0, 32)}.narinfo`,
  );
  const text = narinfo.body.toString("utf8");
  narPath = `/${/^URL: (.*)$/m.exec(text)?.[1] ?? ""}`;
  narSize = Number(/^NarSize: (\d+)$/m.exec(text)?.[1]);
}, 120_000);

afterAll(async () => {
  // The daemon survived every test; a crash would have failed the last check of each.
  await stopAllIrisd();
  await removeDir(dir);
});

async function expectAlive(): Promise<void> {
  const res = await httpRequest(`${irisd.url}/nix-cache-info`);
  expect(res.status).toBe(200);
  expect(irisd.logs().filter((l) => l.level >= 50)).toEqual([]);
}

describe("path traversal", () => {
  it.each([
    ["/nar/../../etc/passwd", 400],
    ["/../../../../etc/passwd", 400],
    ["/nar/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 400],
    ["/nar/%2E%2E/%2E%2E/etc/passwd", 400],
    ["/nar/.%2e/.%2e/etc/passwd", 400],
    ["/nar%2f..%2f..%2fetc%2fpasswd", 400],
    ["/nar/..%2f..%2fetc%2fpasswd.nar", 400],
    ["/%252e%252e/%252e%252e/etc/passwd", 400],
    ["/nar/%252e%252e%252fetc%252fpasswd.nar", 400],
    // A backslash is just a character here: no route owns such a name.
    ["/nar/..\\..\\..\\etc\\passwd", 404],
    ["/nar/..%5c..%5cetc%5cpasswd", 400],
    ["/etc/passwd", 404],
    ["//etc/passwd", 404],
    ["/nar//etc/passwd", 404],
    ["/nix/store", 404],
    ["/nix/var/nix/db/db.sqlite", 404],
    ["/nar/etc/passwd%00.nar", 400],
    ["/0123456789abcdfghijklmnpqrsvwxyz.narinfo/../../etc/passwd", 400],
    ["http://127.0.0.1/../../etc/passwd", 400],
  ])("GET %s is %i and leaks nothing", async (target, status) => {
    const res = await get(target);
    expect(res.status).toBe(status);
    expect(res.body.toString("latin1")).not.toContain(PASSWD_MARK);
    await expectAlive();
  });

  it("never serves a store path's files by name, only NARs of serveable paths", async () => {
    const base = path.basename(closure.mid);
    for (const target of [`/${base}`, `/nix/store/${base}/bin/run`, `/nar/${base}.nar`]) {
      expect([400, 404]).toContain((await get(target)).status);
    }
    await expectAlive();
  });
});

describe("malformed hashes", () => {
  it.each([
    ["/abc.narinfo", 400],
    ["/0123456789ABCDFGHIJKLMNPQRSVWXYZ.narinfo", 400],
    ["/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo", 400],
    ["/0123456789abcdfghijklmnpqrsvwxyz0.narinfo", 400],
    ["/.narinfo", 400],
    // A NAR name outside our scheme is not here: 404, never 400.
    ["/nar/abc.nar", 404],
    ["/nar/0123456789abcdfghijklmnpqrsvwxyz.nar", 404],
    ["/nar/0123456789abcdfghijklmnpqrsvwxyz-tooshort.nar", 404],
    ["/0123456789abcdfghijklmnpqrsvwxyz.narinfo", 404],
  ])("GET %s is %i", async (target, status) => {
    expect((await get(target)).status).toBe(status);
    await expectAlive();
  });
});

describe("methods", () => {
  it.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])("%s is 405 with Allow", async (method) => {
    const res = await get("/nix-cache-info", { "Content-Length": "0" }, method);
    expect(res.status).toBe(405);
    expect(res.head).toContain("Allow: GET, HEAD");
    await expectAlive();
  });

  it("a request body it does not read does not confuse the connection", async () => {
    const res = await rawRequest(
      irisd.port,
      "POST /nix-cache-info HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /" +
        "\r\nGET /nix-cache-info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    expect(res.status).toBe(405);
    await expectAlive();
  });
});

describe("ranges", () => {
  it("answers 416 with the size for a range past the end", async () => {
    const res = await get(narPath, { Range: `bytes=${narSize}-` });
    expect(res.status).toBe(416);
    expect(res.head).toContain(`Content-Range: bytes */${narSize}`);
    await expectAlive();
  });

  it.each(["bytes=99999999999999999999999999-", "bytes=9007199254740993-", "bytes=-0"])(
    "answers 416 for the absurd range %s",
    async (range) => {
      expect((await get(narPath, { Range: range })).status).toBe(416);
      await expectAlive();
    },
  );

  it("sends the whole NAR for several ranges, however many", async () => {
    for (const range of [
      "bytes=0-1,5-6",
      `bytes=${Array.from({ length: 1000 }, (_, i) => `${i}-${i}`).join(",")}`,
    ]) {
      const res = await get(narPath, { Range: range });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(narSize);
    }
    await expectAlive();
  });

  it.each(["bytes=5-2", "bytes=abc", "bytes=--1", "lines=0-1", "bytes=0-1-2"])(
    "ignores the invalid range %s and sends the whole NAR",
    async (range) => {
      const res = await get(narPath, { Range: range });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(narSize);
    },
  );

  it("answers a range of an absent path with 404, not 416", async () => {
    const absent = narPath.replace(/\/nar\/[0-9a-z]{32}/, "/nar/00000000000000000000000000000000");
    expect((await get(absent, { Range: "bytes=0-1" })).status).toBe(404);
  });
});

describe("oversized requests", () => {
  it("answers 414 for a long URL", async () => {
    expect((await get(`/${"a".repeat(2000)}.narinfo`)).status).toBe(414);
    await expectAlive();
  });

  it("answers 431 for a URL longer than the header limit", async () => {
    expect((await get(`/${"a".repeat(100_000)}`)).status).toBe(431);
    await expectAlive();
  });

  it("answers 431 for oversized headers", async () => {
    expect((await get("/nix-cache-info", { "X-Big": "b".repeat(20_000) })).status).toBe(431);
    const many: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) many[`X-H${i}`] = "v";
    expect((await get("/nix-cache-info", many)).status).toBe(431);
    await expectAlive();
  });

  it("answers 400 to garbage and to a bad request line", async () => {
    for (const garbage of [
      "\x00\x01\x02\r\n\r\n",
      "GET\r\n\r\n",
      "GET /nix-cache-info HTTP/9.9\r\n\r\n",
      "GET /nix cache info HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /nix-cache-info HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ]) {
      const res = await rawRequest(irisd.port, garbage);
      expect([400, 505], JSON.stringify(garbage)).toContain(res.status);
    }
    await expectAlive();
  });
});
