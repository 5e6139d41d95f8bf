import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { createLogger } from "../../log/index.js";
import { createForwarder, forwardRoute, orForward, type Forwarder } from "./forward.js";
import { createHttpMetrics } from "./metrics.js";
import { notFound } from "./http-error.js";
import { IrisServer, FORWARDED_CLIENT_HEADER, type BoundAddress } from "./server.js";

const log = createLogger({ name: "test", level: "silent" });

let dir: string;
let primary: http.Server;
let seen: { method?: string; url?: string; headers: http.IncomingHttpHeaders; body: string }[];
let forwarder: Forwarder;
let worker: IrisServer;
let url: string;

function get(
  target: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(target, {
      method: options.method ?? "GET",
      headers: options.headers,
      agent: false,
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "irisd-forward-"));
  const socketPath = path.join(dir, "primary.sock");
  seen = [];
  primary = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
    req.on("end", () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (req.url === "/cut") {
        res.writeHead(200, { "Content-Length": "100" });
        res.write("partial");
        setTimeout(() => res.destroy(), 20);
        return;
      }
      if (req.url === "/hop") {
        res.writeHead(200, {
          Connection: "keep-alive, X-Hop",
          "X-Hop": "primary's own",
          "X-End": "kept",
        });
        res.end("hop");
        return;
      }
      res.writeHead(req.url?.startsWith("/teapot") === true ? 418 : 200, "Short And Stout", {
        "Content-Type": "text/plain",
        ETag: '"abc"',
        "X-Custom": "kept",
      });
      res.end(`answer for ${req.method} ${req.url}`);
    });
  });
  await new Promise<void>((resolve) => primary.listen(socketPath, resolve));
  forwarder = createForwarder({ socketPath, log });
  worker = new IrisServer({
    routes: [
      orForward(
        {
          name: "local",
          methods: ["GET", "HEAD"],
          match: (p) => (p.startsWith("/local-") ? [p] : undefined),
          handle(_req, res, params) {
            if (params[0] === "/local-missing") throw notFound();
            res.end("local answer");
            return { status: 200, bytes: 12 };
          },
        },
        forwarder,
      ),
      forwardRoute(forwarder),
    ],
    log,
    metrics: createHttpMetrics({ defaults: false }),
    shutdownTimeoutMs: 1000,
  });
  const [bound] = (await worker.listen([
    { host: "127.0.0.1", port: 0, text: "127.0.0.1:0" },
  ])) as BoundAddress[];
  url = bound?.url ?? "";
});

afterAll(async () => {
  await worker.close();
  forwarder.close();
  await new Promise<void>((resolve) =>
    primary.close(() => {
      resolve();
    }),
  );
  await rm(dir, { recursive: true, force: true });
});

describe("a worker's forwarding to its primary", () => {
  it("passes method, target and headers, names the client, and drops a client's own client header", async () => {
    const res = await get(`${url}/teapot?x=1`, {
      headers: {
        [FORWARDED_CLIENT_HEADER]: "10.9.9.9",
        "X-Asked": "yes",
        Connection: "keep-alive",
      },
    });
    expect(res.status).toBe(418);
    expect(res.body).toBe("answer for GET /teapot?x=1");
    expect(res.headers).toMatchObject({ etag: '"abc"', "x-custom": "kept" });
    const request = seen.at(-1);
    expect(request?.headers[FORWARDED_CLIENT_HEADER]).toBe("127.0.0.1");
    expect(request?.headers["x-asked"]).toBe("yes");
  });

  it("drops the headers a Connection header names, both ways (RFC 9110 §7.6.1)", async () => {
    const res = await get(`${url}/hop`, {
      headers: {
        Connection: "keep-alive, X-Private",
        "X-Private": "to the worker only",
        "X-Asked": "yes",
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers["x-end"]).toBe("kept");
    expect(res.headers["x-hop"]).toBeUndefined();
    const request = seen.at(-1);
    expect(request?.url).toBe("/hop");
    expect(request?.headers["x-asked"]).toBe("yes");
    expect(request?.headers["x-private"]).toBeUndefined();
  });

  it("streams a request body (POST) through", async () => {
    const res = await get(`${url}/rescan`, { method: "POST", body: '{"paths":[]}' });
    expect(res.status).toBe(200);
    expect(seen.at(-1)).toMatchObject({ method: "POST", url: "/rescan", body: '{"paths":[]}' });
  });

  it("answers locally when it can, and forwards the local 404", async () => {
    const before = seen.length;
    expect((await get(`${url}/local-here`)).body).toBe("local answer");
    expect(seen.length).toBe(before);
    const missing = await get(`${url}/local-missing`);
    expect(missing.body).toBe("answer for GET /local-missing");
    expect(seen.length).toBe(before + 1);
  });

  it("cuts the client's connection when the primary cuts its response mid-body", async () => {
    await expect(get(`${url}/cut`)).rejects.toThrow();
  });

  it("answers 502 when the primary is not there", async () => {
    const gone = createForwarder({ socketPath: path.join(dir, "nobody.sock"), log });
    const server = new IrisServer({
      routes: [forwardRoute(gone)],
      log,
      metrics: createHttpMetrics({ defaults: false }),
      shutdownTimeoutMs: 1000,
    });
    const [bound] = await server.listen([{ host: "127.0.0.1", port: 0, text: "127.0.0.1:0" }]);
    try {
      expect((await get(`${bound?.url ?? ""}/anything`)).status).toBe(502);
    } finally {
      await server.close();
      gone.close();
    }
  });
});
