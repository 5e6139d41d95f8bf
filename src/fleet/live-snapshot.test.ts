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

  it("copies a host's values once between snapshots, and never edits a delivered snapshot", () => {
    const live = new LiveSnapshot(P);
    live.reset(
      snapshotFromPairs(P, [
        { key: "/ns/a/current", value: v("r1") },
        { key: "/ns/c/current", value: v("c1") },
      ]),
    );
    const first = live.snapshot();
    live.apply("/ns/a/current", v("r2"));
    live.apply("/ns/a/booted", v("b2"));
    live.apply("/ns/a/current", v("r3"));
    const second = live.snapshot();
    // The host that did not change is the same object: its decoding is reused.
    expect(second.hosts.get("c")).toBe(first.hosts.get("c"));
    expect(read(first, "a", "current")).toBe("r1");
    expect(read(first, "a", "booted")).toBeUndefined();
    expect(read(second, "a", "current")).toBe("r3");
    expect(read(second, "a", "booted")).toBe("b2");
    // After a snapshot, a change copies again: the delivered one stays as it was.
    live.apply("/ns/a/current", v("r4"));
    live.apply("/ns/a/booted", null);
    const third = live.snapshot();
    expect(read(second, "a", "current")).toBe("r3");
    expect(read(second, "a", "booted")).toBe("b2");
    expect(read(third, "a", "current")).toBe("r4");
    expect(read(third, "a", "booted")).toBeUndefined();
    expect(third.hosts.get("a")).not.toBe(second.hosts.get("a"));
    // A host deleted and created again between snapshots leaves the older one alone.
    live.apply("/ns/a/current", null);
    live.apply("/ns/a/current", v("r5"));
    expect(read(third, "a", "current")).toBe("r4");
    expect(read(live.snapshot(), "a", "current")).toBe("r5");
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
