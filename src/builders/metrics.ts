/**
 * The builders daemon's Prometheus metrics, served on `--metrics-listen`
 * at `/metrics`.
 */

import { createServer, type Server } from "node:http";

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

import { OgygiaError } from "../core/index.js";

export interface BuildersMetrics {
  builders(listed: number, inBackoff: number): void;
  malformed(count: number): void;
  probed(ok: boolean, seconds: number): void;
  written(): void;
  backendReachable(reachable: boolean): void;
  render(): Promise<{ contentType: string; body: string }>;
}

export function createBuildersMetrics(): BuildersMetrics {
  const registry = new Registry();
  // Event-loop lag sampled every 100 ms, not every 10 ms (as irisd's metrics).
  collectDefaultMetrics({
    register: registry,
    prefix: "ogygia_builders_",
    eventLoopMonitoringPrecision: 100,
  });
  const listed = new Gauge({
    name: "ogygia_builders_listed",
    help: "Builders in the machines file.",
    registers: [registry],
  });
  const backoff = new Gauge({
    name: "ogygia_builders_in_backoff",
    help: "Builders dropped after failed probes, waiting for their next probe.",
    registers: [registry],
  });
  const malformed = new Gauge({
    name: "ogygia_builders_malformed_entries",
    help: "Builder entries in the fleet refused as malformed.",
    registers: [registry],
  });
  const probes = new Counter({
    name: "ogygia_builders_probes_total",
    help: "Probes of builders over SSH, by result.",
    labelNames: ["result"],
    registers: [registry],
  });
  const probeSeconds = new Histogram({
    name: "ogygia_builders_probe_seconds",
    help: "How long a probe took.",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const writes = new Counter({
    name: "ogygia_builders_file_writes_total",
    help: "Rewrites of the machines file.",
    registers: [registry],
  });
  const reachable = new Gauge({
    name: "ogygia_builders_backend_reachable",
    help: "1 when the last read of the fleet backend succeeded, else 0.",
    registers: [registry],
  });
  return {
    builders(count, inBackoff) {
      listed.set(count);
      backoff.set(inBackoff);
    },
    malformed(count) {
      malformed.set(count);
    },
    probed(ok, seconds) {
      probes.inc({ result: ok ? "ok" : "failed" });
      probeSeconds.observe(seconds);
    },
    written() {
      writes.inc();
    },
    backendReachable(up) {
      reachable.set(up ? 1 : 0);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** Serves `GET /metrics` on `host:port`; resolves once listening. */
export async function serveMetrics(
  metrics: BuildersMetrics,
  listen: { host: string; port: number },
): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    metrics.render().then(
      ({ contentType, body }) => {
        res.writeHead(200, { "content-type": contentType }).end(req.method === "HEAD" ? "" : body);
      },
      () => {
        res.writeHead(500).end();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => {
      reject(
        new OgygiaError(
          "ERR_OGYGIA_BUILDERS",
          `cannot listen on ${listen.host}:${listen.port} for metrics: ${err.message}`,
          { cause: err },
        ),
      );
    });
    server.listen(listen.port, listen.host, resolve);
  });
  return server;
}
