import { describe, expect, it } from "vitest";

import { Backoff, BackoffGate, backoffDelay, delay } from "./backoff.js";

/** irisd's peers: 1 s, 2 s, 4 s, ... up to 30 s, ±20 %. */
const PEER_BACKOFF = { initialMs: 1000, maxMs: 30_000, jitter: 0.2 };

describe("Backoff", () => {
  it("doubles from the initial delay up to the bound, without jitter", () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
    const delays = Array.from({ length: 7 }, () => backoff.next());
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
    expect(backoff.attempts).toBe(7);
  });

  it("starts again after reset", () => {
    const backoff = new Backoff({ initialMs: 50, maxMs: 10_000, jitter: 0 });
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.next()).toBe(50);
  });

  it("spreads delays by the jitter fraction and never exceeds the bound", () => {
    const low = new Backoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2, random: () => 0 });
    const high = new Backoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2, random: () => 0.999999 });
    expect(low.next()).toBe(800);
    expect(high.next()).toBe(1200);
    for (let i = 0; i < 100; i++) expect(high.next()).toBeLessThanOrEqual(5000);
  });

  it("stays finite after very many failures", () => {
    const backoff = new Backoff({ initialMs: 1, maxMs: 30_000, jitter: 0 });
    for (let i = 0; i < 10_000; i++) backoff.next();
    expect(backoff.next()).toBe(30_000);
  });

  it("refuses a bound below the initial delay", () => {
    expect(() => new Backoff({ initialMs: 100, maxMs: 10 })).toThrow(RangeError);
  });
});

describe("backoffDelay", () => {
  it("doubles from the base delay up to the maximum", () => {
    const policy = { initialMs: 1000, maxMs: 30_000 };
    expect([0, 1, 2, 3, 4, 5, 6, 100].map((n) => backoffDelay(n, policy))).toEqual([
      0, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
  });
});

describe("BackoffGate", () => {
  it("leaves a failed peer alone until its delay has passed, and forgets on success", () => {
    const backoff = new BackoffGate({ initialMs: 1000, maxMs: 30_000, jitter: 0 });
    expect(backoff.available(0)).toBe(true);
    expect(backoff.failure(10_000)).toBe(1000);
    expect(backoff.available(10_999)).toBe(false);
    expect(backoff.available(11_000)).toBe(true);
    expect(backoff.failure(11_000)).toBe(2000);
    expect(backoff.failures).toBe(2);
    expect(backoff.retryAt).toBe(13_000);
    backoff.success();
    expect(backoff.failures).toBe(0);
    expect(backoff.available(11_001)).toBe(true);
    expect(backoff.failure(20_000)).toBe(1000);
  });

  it("spreads delays by the jitter, never past the maximum", () => {
    const low = new BackoffGate({ ...PEER_BACKOFF, random: () => 0 });
    const high = new BackoffGate({ ...PEER_BACKOFF, random: () => 1 });
    expect(low.failure(0)).toBe(800);
    expect(high.failure(0)).toBe(1200);
    for (let i = 0; i < 10; i++) high.failure(0);
    expect(high.failure(0)).toBe(PEER_BACKOFF.maxMs);
  });
});

describe("delay", () => {
  it("resolves early when its signal aborts", async () => {
    // Without the abort this would outlast the test's timeout.
    const controller = new AbortController();
    const pending = delay(60_000, controller.signal);
    controller.abort();
    await expect(pending).resolves.toBeUndefined();
  });

  it("resolves at once for an aborted signal", async () => {
    await expect(delay(60_000, AbortSignal.abort())).resolves.toBeUndefined();
  });
});
