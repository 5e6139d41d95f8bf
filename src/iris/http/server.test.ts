import http from "node:http";
import net from "node:net";

import { afterEach, describe, expect, it } from "vitest";

import { OgygiaError } from "../../core/index.js";
import { HttpError } from "./http-error.js";
import type { Logger } from "../../log/index.js";
import { createHttpMetrics } from "./metrics.js";
import { exactPath, type Route } from "./router.js";
import { sendBody } from "./routes.js";
import { IrisServer } from "./server.js";

interface Logged {
  level: string;
  fields: object;
  message: string;
}

function memoryLogger(): Logger & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at =
    (level: string) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields, message });
    };
  return {
    lines,
    fatal: at("fatal"),
    error: at("error"),
    warn: at("warn"),
    info: at("info"),
    debug: at("debug"),
    isLevelEnabled: () => false,
  };
}

const LOCAL = { host: "127.0.0.1", port: 0, text: "127.0.0.1:0" };

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; agent?: http.Agent } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: options.method ?? "GET",
      headers: options.headers,
      agent: options.agent,
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Sends raw bytes and collects everything until the server closes. */
function rawExchange(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let received = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (received += chunk));
    socket.on("end", () => {
      resolve(received);
    });
    socket.on("close", () => {
      resolve(received);
    });
    socket.on("error", reject);
    socket.write(data);
  });
}

let servers: IrisServer[] = [];
afterEach(async () => {
  gate.release?.();
  gate.release = undefined;
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

/** Releases the request waiting in `/slow`, once one is. */
const gate: { release: (() => void) | undefined } = { release: undefined };

async function untilSlowIsWaiting(): Promise<void> {
  for (let i = 0; i < 400 && gate.release === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (gate.release === undefined) throw new Error("the /slow request never arrived");
}

const routes: Route[] = [
  {
    name: "hello",
    methods: ["GET", "HEAD"],
    match: exactPath("/hello"),
    handle: (req, res) => sendBody(req, res, 200, "text/plain", Buffer.from("hello\n")),
  },
  {
    name: "teapot",
    methods: ["GET"],
    match: exactPath("/teapot"),
    handle: () => {
      throw new HttpError(418, "short and stout", { headers: { "X-Why": "tea" } });
    },
  },
  {
    name: "bug",
    methods: ["GET"],
    match: exactPath("/bug"),
    handle: () => Promise.reject(new TypeError("undefined is not a teapot")),
  },
  {
    name: "midway",
    methods: ["GET"],
    match: exactPath("/midway"),
    async handle(_req, res) {
      res.writeHead(200, { "Content-Length": "100" });
      res.write("x".repeat(10));
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new OgygiaError("ERR_OGYGIA_NIX_NAR", "the tree vanished");
    },
  },
  {
    name: "slow",
    methods: ["GET"],
    match: exactPath("/slow"),
    async handle(req, res) {
      res.writeHead(200, { "Content-Length": "4" });
      res.write("sl");
      await new Promise<void>((resolve) => (gate.release = resolve));
      res.end("ow");
      return { status: 200, bytes: 4 };
    },
  },
];

async function start(options: { timeoutMs?: number } = {}): Promise<{
  server: IrisServer;
  url: string;
  port: number;
  log: ReturnType<typeof memoryLogger>;
}> {
  const log = memoryLogger();
  const server = new IrisServer({
    routes,
    log,
    metrics: createHttpMetrics({ defaults: false }),
    shutdownTimeoutMs: options.timeoutMs ?? 5000,
  });
  servers.push(server);
  const [bound] = await server.listen([LOCAL]);
  if (bound === undefined) throw new Error("not listening");
  return { server, url: bound.url, port: bound.port, log };
}

describe("IrisServer", () => {
  it("answers a route", async () => {
    const { url } = await start();
    const res = await request(`${url}/hello`);
    expect(res).toMatchObject({ status: 200, body: "hello\n" });
    expect(res.headers["content-length"]).toBe("6");
  });

  it("sends no body for HEAD but the GET's Content-Length", async () => {
    const { port } = await start();
    const raw = await rawExchange(
      port,
      "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(raw).toContain("Content-Length: 6\r\n");
    expect(raw.endsWith("\r\n\r\n")).toBe(true);
  });

  it("maps an HttpError to its status, message and headers", async () => {
    const { url, log } = await start();
    const res = await request(`${url}/teapot`);
    expect(res.status).toBe(418);
    expect(res.body).toBe("short and stout\n");
    expect(res.headers["x-why"]).toBe("tea");
    expect(log.lines.filter((l) => l.level === "error")).toEqual([]);
  });

  it("maps anything else to a 500 and logs it as an error", async () => {
    const { url, log } = await start();
    const res = await request(`${url}/bug`);
    expect(res).toMatchObject({ status: 500, body: "internal error\n" });
    expect(log.lines.find((l) => l.level === "error")?.fields).toMatchObject({
      err: "undefined is not a teapot",
    });
  });

  it("answers 404, 405 with Allow, 400 and 414", async () => {
    const { url } = await start();
    expect((await request(`${url}/nope`)).status).toBe(404);
    const res = await request(`${url}/hello`, { method: "DELETE" });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe("GET, HEAD");
    expect((await request(`${url}/hel%2flo`)).status).toBe(400);
    expect((await request(`${url}/${"a".repeat(2000)}`)).status).toBe(414);
  });

  it("cuts the connection when a response fails after its headers", async () => {
    const { url, log } = await start();
    await expect(request(`${url}/midway`)).rejects.toThrow();
    expect(log.lines.find((l) => l.level === "warn")?.message).toContain("transfer aborted");
  });

  it("answers 431 to oversized headers and 400 to garbage, and keeps serving", async () => {
    const { port, url } = await start();
    const big = await rawExchange(
      port,
      `GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
    );
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    const garbage = await rawExchange(port, "\x00\x01 nonsense\r\n\r\n");
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
    expect((await request(`${url}/hello`)).status).toBe(200);
  });

  it("refuses to listen on a taken address, naming it", async () => {
    const { port } = await start();
    const other = new IrisServer({
      routes,
      log: memoryLogger(),
      metrics: createHttpMetrics({ defaults: false }),
      shutdownTimeoutMs: 1000,
    });
    servers.push(other);
    const taken = { host: "127.0.0.1", port, text: `127.0.0.1:${port}` };
    await expect(other.listen([LOCAL, taken])).rejects.toMatchObject({
      code: "ERR_OGYGIA_IRISD_LISTEN",
      message: `cannot listen on 127.0.0.1:${port}: the address is already in use`,
    });
    // The address that did bind was released again.
    expect(other.addresses.length).toBe(1);
  });

  it("on close, finishes the request in flight, refuses new connections and closes idle ones", async () => {
    const { server, url, port } = await start();
    const agent = new http.Agent({ keepAlive: true });
    expect((await request(`${url}/hello`, { agent })).status).toBe(200);
    const slow = request(`${url}/slow`);
    await untilSlowIsWaiting();
    let closed = false;
    const closing = server.close().then(() => (closed = true));
    await expect(
      new Promise((resolve, reject) => {
        const socket = net.connect({ port, host: "127.0.0.1" });
        socket.on("connect", () => {
          socket.destroy();
          resolve("connected");
        });
        socket.on("error", reject);
      }),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
    expect(closed).toBe(false);
    gate.release?.();
    expect(await slow).toMatchObject({ status: 200, body: "slow" });
    await closing;
    expect(closed).toBe(true);
    agent.destroy();
  });

  it("cuts requests still in flight after the shutdown timeout", async () => {
    const { server, url } = await start({ timeoutMs: 100 });
    const slow = request(`${url}/slow`);
    await untilSlowIsWaiting();
    await server.close();
    await expect(slow).rejects.toThrow();
    gate.release?.();
  });
});
