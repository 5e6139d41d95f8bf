import { createHash } from "node:crypto";
import http from "node:http";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { describeFailure, peerBase, type PeerBase } from "./peer-http.js";
import { pooledGet, type PooledGetOptions } from "./peer-stream.js";
import { Slabs } from "./slabs.js";

// Bytes no two neighbouring slabs share by accident: a recycled slab read too early shows.
const body = Buffer.alloc(5 * 1024 * 1024 + 12_345);
for (let i = 0; i < body.length; i++) body[i] = (i * 7919 + (i >> 16)) % 251;
const digest = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

let server: http.Server;
let base: PeerBase;
let handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;

beforeEach(async () => {
  server = http.createServer((req, res) => {
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  base = peerBase(`http://user:secret@127.0.0.1:${port}/prefix`);
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function get(slabs: Slabs, extra: Partial<PooledGetOptions> = {}) {
  return pooledGet(base, {
    path: "local/nar/x.nar",
    headers: { Range: "bytes=0-" },
    timeoutMs: 2000,
    bodyIdleMs: 2000,
    expectBytes: body.length,
    slabs,
    connectTimeoutMs: 500,
    describe: describeFailure,
    ...extra,
  });
}

/** Collects the body; each chunk is copied only after a delay (so the slabs must stay put while referenced). */
function collect(
  slabs: Slabs,
  response: Awaited<ReturnType<typeof get>>,
): Promise<{ data: Buffer; err: Error | undefined }> {
  const kept: Buffer[] = [];
  return new Promise((resolve) => {
    response.body.start({
      chunk(data) {
        slabs.ref(data);
        kept.push(data);
      },
      end(err) {
        // Copy only now: every chunk kept a reference, so no slab went back under it.
        const data = Buffer.concat(kept);
        for (const chunk of kept) slabs.unref(chunk);
        resolve({ data, err });
      },
    });
  });
}

describe("a NAR body read into pooled slabs", () => {
  it("delivers the exact body with the request's headers, and every slab goes back", async () => {
    let seen: http.IncomingHttpHeaders = {};
    let url = "";
    handler = (req, res) => {
      seen = req.headers;
      url = req.url ?? "";
      res.writeHead(200, { "content-length": body.length });
      // Many small writes: reads of every size, and a region filled in several reads.
      let at = 0;
      const step = (): void => {
        while (at < body.length) {
          const next = Math.min(body.length, at + 1000 + (at % 70_000));
          const more = res.write(body.subarray(at, next));
          at = next;
          if (!more) {
            res.once("drain", step);
            return;
          }
        }
        res.end();
      };
      step();
    };
    const slabs = new Slabs();
    const response = await get(slabs);
    expect(response.status).toBe(200);
    const { data, err } = await collect(slabs, response);
    expect(err).toBeUndefined();
    expect(digest(data)).toBe(digest(body));
    expect(url).toBe("/prefix/local/nar/x.nar");
    expect(seen.authorization).toBe(`Basic ${Buffer.from("user:secret").toString("base64")}`);
    expect(seen.range).toBe("bytes=0-");
    expect(slabs.live).toBe(0);
  });

  it("recycles slabs while a slow consumer pauses and resumes, without mixing up bytes", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": body.length });
      res.end(body);
    };
    const slabs = new Slabs(256 * 1024, 4);
    const response = await get(slabs);
    const parts: Buffer[] = [];
    const err = await new Promise<Error | undefined>((resolve) => {
      let received = 0;
      response.body.start({
        chunk(data) {
          // A copy at once, the slab's bytes are not kept: they are reused as we go.
          parts.push(Buffer.from(data));
          received += data.length;
          if (received % 3 === 0) {
            response.body.pause();
            setTimeout(() => {
              response.body.resume();
            }, 2);
          }
        },
        end: resolve,
      });
    });
    expect(err).toBeUndefined();
    expect(digest(Buffer.concat(parts))).toBe(digest(body));
    expect(slabs.live).toBe(0);
  });

  it("reads as an async iterable of copies too (a continuation that skips bytes)", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": body.length });
      res.end(body);
    };
    const slabs = new Slabs(256 * 1024, 4);
    const response = await get(slabs);
    const parts: Buffer[] = [];
    for await (const chunk of response.body) {
      parts.push(chunk);
      if (parts.length % 7 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(digest(Buffer.concat(parts))).toBe(digest(body));
    expect(slabs.live).toBe(0);
  });

  it("a small body that arrives with the head is delivered once the consumer starts", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": 100 });
      res.end(body.subarray(0, 100));
    };
    const slabs = new Slabs();
    const response = await get(slabs, { expectBytes: 100 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { data, err } = await collect(slabs, response);
    expect(err).toBeUndefined();
    expect(data.equals(body.subarray(0, 100))).toBe(true);
    expect(slabs.live).toBe(0);
  });

  it("fails the body when the peer dies mid-way, naming the bytes received", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, 300_000), () => {
        setTimeout(() => res.destroy(), 20);
      });
    };
    const slabs = new Slabs();
    const { data, err } = await collect(slabs, await get(slabs));
    expect(err?.message).toMatch(/the body ended after \d+ of \d+ bytes/);
    expect(data.equals(body.subarray(0, data.length))).toBe(true);
    expect(slabs.live).toBe(0);
  });

  it("refuses a body without Content-Length, and answers a status without reading its body", async () => {
    handler = (req, res) => {
      if (req.url?.endsWith("missing.nar") === true) {
        res.writeHead(404, { "content-length": 9 });
        res.end("not found");
        return;
      }
      res.writeHead(200, { "transfer-encoding": "chunked" });
      res.end(body.subarray(0, 1000));
    };
    const slabs = new Slabs();
    await expect(get(slabs)).rejects.toThrow(/without Content-Length/);
    const missing = await get(slabs, { path: "local/nar/missing.nar" });
    expect(missing.status).toBe(404);
    missing.discard();
    expect(slabs.live).toBe(0);
  });

  it("stops on the caller's abort and on a stalled body, with the peer named", async () => {
    handler = (_req, res) => {
      res.writeHead(200, { "content-length": body.length });
      res.write(body.subarray(0, 1000));
    };
    const slabs = new Slabs();
    const controller = new AbortController();
    const response = await get(slabs, { signal: controller.signal });
    const result = collect(slabs, response);
    controller.abort();
    expect((await result).err?.message).toMatch(/aborted/);
    const stalled = await get(slabs, { bodyIdleMs: 100 });
    const stall = (await collect(slabs, stalled)).err?.message;
    expect(stall).toMatch(/peer http:\/\/\*\*\*@127\.0\.0\.1:\d+\/prefix: .*the body stalled/);
    expect(stall).not.toContain("secret");
    expect(slabs.live).toBe(0);
  });

  it("fails to connect within the bound to a closed port", async () => {
    const port = (server.address() as { port: number }).port;
    await new Promise((resolve) => server.close(resolve));
    const slabs = new Slabs();
    const closed = pooledGet(peerBase(`http://127.0.0.1:${port}`), {
      path: "x",
      headers: {},
      timeoutMs: 2000,
      bodyIdleMs: 2000,
      expectBytes: 10,
      slabs,
      connectTimeoutMs: 500,
      describe: describeFailure,
    });
    await expect(closed).rejects.toThrow(/connection refused/);
    server.listen(0, "127.0.0.1");
  });
});

describe("slabs", () => {
  it("hands a slab back once its last reference goes, and ignores buffers not its own", () => {
    const slabs = new Slabs(1024, 2);
    const a = slabs.region(600);
    const b = slabs.region(600); // no room left in the first slab: a second one
    expect(a.buffer).not.toBe(b.buffer);
    expect(slabs.live).toBe(2);
    slabs.ref(a);
    slabs.unref(a);
    expect(slabs.live).toBe(2);
    slabs.unref(a); // the first slab: its region gone, its cursor reference given up for b
    expect(slabs.live).toBe(1);
    const c = slabs.region(300); // fits in b's slab
    expect(c.buffer).toBe(b.buffer);
    const other = Buffer.alloc(10);
    slabs.ref(other);
    slabs.unref(other);
    expect(slabs.owns(other)).toBe(false);
    expect(slabs.owns(c)).toBe(true);
  });
});
