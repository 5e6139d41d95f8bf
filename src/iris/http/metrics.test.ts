import { describe, expect, it } from "vitest";

import { createHttpMetrics, renderAggregated } from "./metrics.js";

describe("createHttpMetrics", () => {
  it("counts requests by route and status, bytes by route, and latency", async () => {
    const metrics = createHttpMetrics({ defaults: false });
    metrics.request("narinfo", 200, 500, 0.0002);
    metrics.request("narinfo", 200, 700, 0.0003);
    metrics.request("narinfo", 404, 10, 0.0001);
    metrics.request("nar", 206, 4096, 0.02);
    metrics.aborted("nar", "store");
    const { contentType, body } = await metrics.render();
    expect(contentType).toContain("text/plain");
    expect(body).toContain('irisd_http_requests_total{route="narinfo",status="200"} 2');
    expect(body).toContain('irisd_http_requests_total{route="narinfo",status="404"} 1');
    expect(body).toContain('irisd_http_requests_total{route="nar",status="206"} 1');
    expect(body).toContain('irisd_http_response_body_bytes_total{route="narinfo"} 1210');
    expect(body).toContain('irisd_http_response_body_bytes_total{route="nar"} 4096');
    expect(body).toContain('irisd_http_request_duration_seconds_count{route="narinfo"} 3');
    expect(body).toContain(
      'irisd_http_request_duration_seconds_bucket{le="0.00025",route="narinfo"} 2',
    );
    expect(body).toContain('irisd_nar_transfers_aborted_total{route="nar",reason="store"} 1');
  });

  it("keeps counting across scrapes", async () => {
    const metrics = createHttpMetrics({ defaults: false });
    metrics.request("nar", 200, 1, 0.001);
    await metrics.render();
    metrics.request("nar", 200, 1, 0.001);
    const { body } = await metrics.render();
    expect(body).toContain('irisd_http_requests_total{route="nar",status="200"} 2');
    expect(body).toContain('irisd_http_response_body_bytes_total{route="nar"} 2');
  });

  it("adds up the primary's and its workers' metrics by name and labels", async () => {
    const primary = createHttpMetrics();
    const worker = createHttpMetrics();
    const other = createHttpMetrics();
    primary.request("bloom", 200, 100, 0.001);
    worker.request("narinfo", 200, 500, 0.0002);
    worker.request("narinfo", 404, 10, 0.0001);
    other.request("narinfo", 200, 700, 0.0003);
    other.aborted("nar", "client");
    const { body } = await renderAggregated(await primary.snapshot(), [
      await worker.snapshot(),
      await other.snapshot(),
    ]);
    expect(body).toContain('irisd_http_requests_total{route="bloom",status="200"} 1');
    expect(body).toContain('irisd_http_requests_total{route="narinfo",status="200"} 2');
    expect(body).toContain('irisd_http_requests_total{route="narinfo",status="404"} 1');
    expect(body).toContain('irisd_http_response_body_bytes_total{route="narinfo"} 1210');
    expect(body).toContain('irisd_http_request_duration_seconds_count{route="narinfo"} 3');
    expect(body).toContain(
      'irisd_http_request_duration_seconds_bucket{le="0.00025",route="narinfo"} 2',
    );
    expect(body).toContain('irisd_nar_transfers_aborted_total{route="nar",reason="client"} 1');
    // prom-client omits the start time from a cluster's aggregate: the primary's is kept, once.
    expect(body.match(/^irisd_process_start_time_seconds \d+/gm)).toHaveLength(1);
    expect(body.match(/^# TYPE irisd_http_requests_total counter$/gm)).toHaveLength(1);
  });
});
