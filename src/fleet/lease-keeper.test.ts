import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { OgygiaError } from "../core/index.js";
import { LeaseKeeper } from "./lease-keeper.js";

const TTL = 3000;

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

function reason(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : String(signal.reason);
}

describe("LeaseKeeper", () => {
  it("renews every third of the TTL while renewals succeed", async () => {
    const renew = vi.fn((_timeoutMs: number) => Promise.resolve(true));
    const keeper = new LeaseKeeper({ ttlMs: TTL, grantedAt: Date.now(), timeoutMs: 5000, renew });
    await vi.advanceTimersByTimeAsync(10 * TTL);
    expect(keeper.lost.aborted).toBe(false);
    expect(renew.mock.calls.length).toBeGreaterThanOrEqual(25);
    expect(renew.mock.calls.length).toBeLessThanOrEqual(30);
    keeper.stop("done");
    expect(reason(keeper.lost)).toBe("done");
  });

  it("is lost as soon as the store no longer knows the lease", async () => {
    const keeper = new LeaseKeeper({
      ttlMs: TTL,
      grantedAt: Date.now(),
      timeoutMs: 5000,
      renew: () => Promise.resolve(false),
    });
    await vi.advanceTimersByTimeAsync(TTL / 3 + 1);
    expect(keeper.lost.aborted).toBe(true);
    expect(reason(keeper.lost)).toMatch(/no longer knows/);
  });

  it("is lost one TTL after the last confirmed renewal was sent, not later", async () => {
    let failing = false;
    const keeper = new LeaseKeeper({
      ttlMs: TTL,
      grantedAt: Date.now(),
      timeoutMs: 5000,
      renew: () =>
        failing
          ? Promise.reject(new OgygiaError("ERR_OGYGIA_FLEET_CONNECT", "unreachable"))
          : Promise.resolve(true),
    });
    await vi.advanceTimersByTimeAsync(TTL / 3);
    // The renewal sent at TTL/3 was the last one confirmed.
    failing = true;
    await vi.advanceTimersByTimeAsync(TTL - 1);
    expect(keeper.lost.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(keeper.lost.aborted).toBe(true);
    expect(reason(keeper.lost)).toMatch(/no renewal confirmed/);
  });

  it("counts a renewal that never answers as unconfirmed, within the TTL", async () => {
    const keeper = new LeaseKeeper({
      ttlMs: TTL,
      grantedAt: Date.now(),
      timeoutMs: 60_000,
      renew: () => new Promise<boolean>(() => undefined),
    });
    await vi.advanceTimersByTimeAsync(TTL);
    expect(keeper.lost.aborted).toBe(true);
  });

  it("passes on an unexpected renewal failure as the reason", async () => {
    const bug = new TypeError("bug");
    const keeper = new LeaseKeeper({
      ttlMs: TTL,
      grantedAt: Date.now(),
      timeoutMs: 5000,
      renew: () => Promise.reject(bug),
    });
    await vi.advanceTimersByTimeAsync(TTL / 3 + 1);
    expect(keeper.lost.reason).toBe(bug);
  });
});
