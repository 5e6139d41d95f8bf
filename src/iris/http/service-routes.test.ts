import { afterEach, describe, expect, it } from "vitest";

import type { Logger } from "../../log/index.js";
import { createHttpMetrics } from "./metrics.js";
import { IrisServer } from "./server.js";
import { serviceRoutes } from "./service-routes.js";

const QUIET: Logger = {
  fatal: () => undefined,
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  isLevelEnabled: () => false,
};

let server: IrisServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function serve(ready: () => boolean): Promise<string> {
  server = new IrisServer({
    routes: serviceRoutes({
      version: "1.2.3",
      features: ["listing", "log"],
      ready,
      peerCount: () => 2,
    }),
    log: QUIET,
    metrics: createHttpMetrics(),
    shutdownTimeoutMs: 1000,
  });
  const [bound] = await server.listen([{ host: "127.0.0.1", port: 0, text: "127.0.0.1:0" }]);
  if (bound === undefined) throw new Error("not listening");
  return bound.url;
}

describe("GET /health", () => {
  it("is 503 with Retry-After while the index builds, then 200, JSON both times", async () => {
    let ready = false;
    const url = await serve(() => ready);
    const before = await fetch(`${url}/health`);
    expect(before.status).toBe(503);
    expect(before.headers.get("retry-after")).toBe("1");
    expect(await before.json()).toMatchObject({ status: "starting", indexReady: false, peers: 2 });
    ready = true;
    const after = await fetch(`${url}/health`);
    expect(after.status).toBe(200);
    expect(after.headers.get("content-type")).toBe("application/json");
    expect(await after.json()).toMatchObject({ status: "ready", indexReady: true, peers: 2 });
  });
});

describe("GET /version", () => {
  it("names the daemon, its version and its features", async () => {
    const url = await serve(() => true);
    const res = await fetch(`${url}/version`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      name: "ogygia-irisd",
      version: "1.2.3",
      features: ["listing", "log"],
    });
  });
});
