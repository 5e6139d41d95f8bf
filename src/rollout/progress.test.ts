import { describe, expect, it } from "vitest";

import type { FleetSnapshot, HostValues } from "../fleet/index.js";
import type { Plan } from "./plan.js";
import { earlierWavesConfirmed, mayStart, progressOf } from "./progress.js";

const SYS = (n: number): string => `/nix/store/${"b".repeat(31)}${n}-nixos-system-h${n}`;

const plan: Plan = {
  id: "p1",
  revision: "abcdef1",
  hosts: { a: SYS(1), b: SYS(2), c: SYS(3) },
  waves: [["a"], ["b", "c"]],
  concurrency: 1,
  budget: 1,
  soakSeconds: 10,
  state: "running",
  createdAt: "2026-01-01T00:00:00.000Z",
  changedAt: "2026-01-01T00:00:00.000Z",
};

function snapshot(hosts: Record<string, Record<string, string>>): FleetSnapshot {
  const map = new Map<string, HostValues>();
  for (const [host, fields] of Object.entries(hosts)) {
    map.set(
      host,
      new Map(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v)])) as HostValues,
    );
  }
  return { hosts: map, strayKeys: 0 };
}

const done = (target: string, finishedAt: string) => ({
  update_state: "confirmed",
  update_rollout: "p1",
  update_target: target,
  update_finished_at: finishedAt,
});

describe("progressOf and mayStart", () => {
  it("holds the next wave until the previous one is confirmed and soaked", () => {
    const t = "2026-01-01T00:01:00.000Z";
    const before = progressOf(plan, snapshot({}));
    expect(mayStart(before, "a", 0)).toEqual({ ok: true });
    expect(mayStart(before, "b", 0)).toMatchObject({ ok: false, reason: "wave 1 not done" });
    const soaking = progressOf(plan, snapshot({ a: done(SYS(1), t) }));
    expect(soaking.waves[0]?.done).toBe(true);
    expect(mayStart(soaking, "b", Date.parse(t) + 5000)).toMatchObject({
      ok: false,
      waitMs: 5000,
    });
    expect(mayStart(soaking, "b", Date.parse(t) + 10_000)).toEqual({ ok: true });
  });

  it("answers early that a host may not start while an earlier wave is unconfirmed", () => {
    const t = "2026-01-01T00:01:00.000Z";
    expect(earlierWavesConfirmed(plan, snapshot({}), "a")).toBe(true);
    expect(earlierWavesConfirmed(plan, snapshot({}), "b")).toBe(false);
    expect(earlierWavesConfirmed(plan, snapshot({ a: done(SYS(2), t) }), "b")).toBe(false);
    const { update_finished_at: _at, ...noTime } = done(SYS(1), t);
    expect(earlierWavesConfirmed(plan, snapshot({ a: noTime }), "b")).toBe(false);
    expect(earlierWavesConfirmed(plan, snapshot({ a: done(SYS(1), t) }), "c")).toBe(true);
    expect(earlierWavesConfirmed(plan, snapshot({}), "nobody")).toBe(false);
  });

  it("does not count a confirmation whose finish time is not there yet as soaked", () => {
    // ZooKeeper delivers a host's keys one by one: the state can arrive first.
    const { update_finished_at: _at, ...confirmedOnly } = done(SYS(1), "");
    const partial = progressOf(plan, snapshot({ a: confirmedOnly }));
    expect(partial.hosts[0]?.state).toBe("confirmed");
    expect(partial.waves[0]?.done).toBe(false);
    expect(mayStart(partial, "b", Date.now())).toMatchObject({
      ok: false,
      reason: "wave 1 not done",
    });
  });

  it("ignores states of another rollout or another target", () => {
    const p = progressOf(
      plan,
      snapshot({ a: { ...done(SYS(1), "2026-01-01T00:00:00Z"), update_rollout: "old" } }),
    );
    expect(p.hosts[0]?.state).toBe("pending");
  });

  it("halts once the budget is spent, and completes when every host confirmed", () => {
    const failed = progressOf(
      plan,
      snapshot({
        a: { update_state: "rolled-back", update_rollout: "p1", update_target: SYS(1) },
      }),
    );
    expect(failed.state).toBe("halted");
    expect(mayStart(failed, "b", Date.now())).toMatchObject({
      ok: false,
      reason: "rollout halted",
    });
    const t = "2026-01-01T00:00:00.000Z";
    const all = progressOf(
      plan,
      snapshot({ a: done(SYS(1), t), b: done(SYS(2), t), c: done(SYS(3), t) }),
    );
    expect(all.state).toBe("completed");
    expect(progressOf({ ...plan, state: "paused" }, snapshot({})).state).toBe("paused");
  });
});
