import { describe, expect, it } from "vitest";

import { LiveSnapshot } from "./live-snapshot.js";
import { snapshotFromPairs } from "./keys.js";

const P = "/ns/";
const v = (text: string): Uint8Array => Buffer.from(text);
const read = (
  s: ReturnType<LiveSnapshot["snapshot"]>,
  host: string,
  field: string,
): string | undefined => {
  const raw = s.hosts.get(host)?.get(field as never);
  return raw === undefined ? undefined : Buffer.from(raw).toString();
};

describe("LiveSnapshot", () => {
  it("applies puts and deletes over a full read, leaving earlier snapshots alone", () => {
    const live = new LiveSnapshot(P);
    live.reset(snapshotFromPairs(P, [{ key: "/ns/a/current", value: v("r1") }]));
    const before = live.snapshot();
    expect(live.apply("/ns/a/current", v("r2"))).toBe(true);
    expect(live.apply("/ns/b/booted", v("r3"))).toBe(true);
    const after = live.snapshot();
    expect(read(after, "a", "current")).toBe("r2");
    expect(read(after, "b", "booted")).toBe("r3");
    expect(read(before, "a", "current")).toBe("r1");
    expect(before.hosts.has("b")).toBe(false);
    expect(live.apply("/ns/b/booted", null)).toBe(true);
    expect(live.snapshot().hosts.has("b")).toBe(false);
    expect(after.hosts.has("b")).toBe(true);
  });

  it("ignores keys outside the layout and deletes of absent keys", () => {
    const live = new LiveSnapshot(P);
    expect(live.apply("/other/a/current", v("x"))).toBe(false);
    expect(live.apply("/ns/a/current/deeper", v("x"))).toBe(false);
    expect(live.apply("/ns/a/unknown_field", v("x"))).toBe(false);
    expect(live.apply("/ns/a/current", null)).toBe(false);
    expect(live.snapshot().hosts.size).toBe(0);
  });
});
