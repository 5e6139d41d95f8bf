import { describe, expect, it } from "vitest";

import { computeWaves, makePlan, parseConcurrency, parsePlan, parseRelease } from "./plan.js";

const SYS = (n: number): string =>
  `/nix/store/${"a".repeat(31)}${String.fromCharCode(97 + n)}-nixos-system-h${n}`;

describe("computeWaves", () => {
  const hosts = Array.from({ length: 10 }, (_, i) => `h${i}`);

  it("puts canaries first, then the rest by cumulative percentage", () => {
    const waves = computeWaves(hosts, { canaries: new Set(["h3"]), percentages: [10, 50, 100] });
    expect(waves[0]).toEqual(["h3"]);
    expect(waves.slice(1).map((w) => w.length)).toEqual([1, 4, 4]);
    expect(waves.flat().sort()).toEqual([...hosts].sort());
  });

  it("orders hosts by hash, the same whatever order they are given in", () => {
    const a = computeWaves(hosts, { canaries: new Set(), percentages: [30, 100] });
    const b = computeWaves([...hosts].reverse(), { canaries: new Set(), percentages: [30, 100] });
    expect(a).toEqual(b);
    expect(a[0]).not.toEqual(["h0", "h1", "h2"]);
  });

  it("drops empty waves and refuses percentages that do not end at 100", () => {
    expect(computeWaves(["x"], { canaries: new Set(), percentages: [10, 50, 100] })).toEqual([
      ["x"],
    ]);
    expect(() => computeWaves(hosts, { canaries: new Set(), percentages: [10, 50] })).toThrow(
      /last wave percentage must be 100/,
    );
    expect(() => computeWaves(hosts, { canaries: new Set(), percentages: [50, 20, 100] })).toThrow(
      /must increase/,
    );
  });
});

describe("plans and releases", () => {
  it("takes concurrency as a count or a percentage of the hosts", () => {
    expect(parseConcurrency("3", 100)).toBe(3);
    expect(parseConcurrency("20%", 10)).toBe(2);
    expect(parseConcurrency("1%", 10)).toBe(1);
    expect(() => parseConcurrency("0", 10)).toThrow(/concurrency/);
    expect(() => parseConcurrency("150%", 10)).toThrow(/concurrency/);
  });

  it("refuses a release with a host that has no store path", () => {
    expect(() =>
      parseRelease(JSON.stringify({ revision: "abcdef1", hosts: { web01: "/tmp/x" } }), "r.json"),
    ).toThrow(/release r.json: host web01/);
  });

  it("round-trips a plan through its stored form", () => {
    const release = parseRelease(
      JSON.stringify({ revision: "abcdef1", hosts: { h1: SYS(1), h2: SYS(2) } }),
      "r.json",
    );
    const plan = makePlan(release, {
      canaryTag: "canary",
      percentages: [100],
      concurrency: "1",
      budget: 1,
      soakSeconds: 0,
      now: new Date(0),
    });
    expect(parsePlan(Buffer.from(JSON.stringify(plan)), "/k")).toEqual(plan);
    expect(() => parsePlan(Buffer.from('{"id":1}'), "/k")).toThrow(/plan at \/k is unusable/);
  });
});
