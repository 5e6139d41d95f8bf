import { describe, expect, it } from "vitest";

import { Backoff, delay } from "./retry.js";

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
