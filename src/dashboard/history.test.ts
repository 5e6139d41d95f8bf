import { rmSync } from "node:fs";

import { afterEach, describe, expect, it } from "vitest";

import { openHistory } from "./history.js";
import type { HostJson } from "./wire.js";
import { tempDirSync } from "../../test/support/temp.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function host(name: string, current: string): HostJson {
  return {
    host: name,
    displayName: name,
    local: false,
    current,
    booted: current,
    nextboot: current,
    online: true,
    rebootRequired: false,
    updatedAt: null,
  };
}

describe("dashboard history", () => {
  it("prunes old changes but keeps each present host's newest, and forgets hosts long gone", () => {
    const dir = tempDirSync("history");
    dirs.push(dir);
    const store = openHistory(dir);
    const day = (n: number): Date => new Date(Date.UTC(2026, 0, n));
    store.record([host("a", "r1"), host("gone", "g1")], day(1));
    store.record([host("a", "r2")], day(2));
    store.record([host("a", "r3")], day(20));
    expect(store.history("a").map((e) => e.current)).toEqual(["r1", "r2", "r3"]);

    // Before day 10: a's r1 and r2 go (r3 is newer); "gone" is not in the fleet: forgotten.
    expect(store.prune(day(10), new Set(["a"]))).toBe(3);
    expect(store.history("a").map((e) => e.current)).toEqual(["r3"]);
    expect(store.history("gone")).toEqual([]);

    // A present host keeps its newest entry however old it is.
    expect(store.prune(day(30), new Set(["a"]))).toBe(0);
    expect(store.history("a").map((e) => e.current)).toEqual(["r3"]);

    // A forgotten host coming back is recorded again from scratch.
    store.record([host("gone", "g1")], day(31));
    expect(store.history("gone").map((e) => e.current)).toEqual(["g1"]);
    store.close();

    // Survives reopening.
    const again = openHistory(dir);
    expect(again.history("a").map((e) => e.current)).toEqual(["r3"]);
    again.close();
  });
});
