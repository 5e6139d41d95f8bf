/**
 * The daemon's Prometheus metrics (prom-client), served at `/metrics`:
 * requests by route and status, body bytes sent by route, a latency
 * histogram by route, NAR transfers aborted mid-body, and the default
 * process metrics (resident memory, CPU, event-loop lag, ...).
 *
 * The hot path only adds to plain numbers: request and byte counts are
 * handed to prom-client when /metrics is scraped (its `collect` hook), and
 * the histogram gets label objects built once per route.
 */

import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface HttpMetrics {
  /** The registry behind /metrics, for the peer-to-peer layer's own metrics. */
  readonly registry: Registry;
  /** One finished request. `seconds` is the time to produce the response. */
  request(route: string, status: number, bytes: number, seconds: number): void;
  /** A response cut off mid-body (the path vanished, the store changed, a bug). */
  aborted(route: string, reason: "store" | "client" | "error"): void;
  /** The exposition text and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  30, 60, 300,
];

interface RouteCounts {
  labels: { route: string };
  /** Requests by status code. */
  byStatus: Map<number, number>;
  bytes: number;
}

/** A registry with the daemon's metrics; `prefix` starts every name. */
export function createHttpMetrics(
  options: { prefix?: string; defaults?: boolean } = {},
): HttpMetrics {
  const prefix = options.prefix ?? "irisd_";
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry, prefix });
  const routes = new Map<string, RouteCounts>();
  const countsOf = (route: string): RouteCounts => {
    let entry = routes.get(route);
    if (entry === undefined) {
      entry = { labels: { route }, byStatus: new Map(), bytes: 0 };
      routes.set(route, entry);
    }
    return entry;
  };

  new Counter({
    name: `${prefix}http_requests_total`,
    help: "HTTP requests answered, by route and status.",
    labelNames: ["route", "status"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [route, entry] of routes) {
        for (const [status, count] of entry.byStatus) {
          this.inc({ route, status: String(status) }, count);
        }
      }
    },
  });
  new Counter({
    name: `${prefix}http_response_body_bytes_total`,
    help: "Response body bytes sent, by route.",
    labelNames: ["route"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [route, entry] of routes) {
        if (entry.bytes > 0) this.inc({ route }, entry.bytes);
      }
    },
  });
  const latency = new Histogram({
    name: `${prefix}http_request_duration_seconds`,
    help: "Time from request to the last body byte handed to the socket, by route.",
    labelNames: ["route"],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const aborted = new Counter({
    name: `${prefix}nar_transfers_aborted_total`,
    help: "NAR responses cut off mid-body, by route and reason (store: the path changed or vanished).",
    labelNames: ["route", "reason"],
    registers: [registry],
  });

  return {
    registry,
    request(route, status, sent, seconds) {
      const entry = countsOf(route);
      entry.byStatus.set(status, (entry.byStatus.get(status) ?? 0) + 1);
      entry.bytes += sent;
      latency.observe(entry.labels, seconds);
    },
    aborted(route, reason) {
      aborted.inc({ route, reason }, 1);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
