import { describe, expect, it } from "vitest";

import { PEER_BACKOFF, backoffDelay, createBackoff } from "./backoff.js";

describe("backoff", () => {
  it("doubles from the base delay up to the maximum", () => {
    const policy = { baseMs: 1000, maxMs: 30_000, jitter: 0 };
    expect([0, 1, 2, 3, 4, 5, 6, 100].map((n) => backoffDelay(n, policy))).toEqual([
      0, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000,
    ]);
  });

  it("leaves a failed peer alone until its delay has passed, and forgets on success", () => {
    const backoff = createBackoff({ baseMs: 1000, maxMs: 30_000, jitter: 0 });
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
    const low = createBackoff(PEER_BACKOFF, () => 0);
    const high = createBackoff(PEER_BACKOFF, () => 1);
    expect(low.failure(0)).toBe(800);
    expect(high.failure(0)).toBe(1200);
    for (let i = 0; i < 10; i++) high.failure(0);
    expect(high.failure(0)).toBe(PEER_BACKOFF.maxMs);
  });
});
