import { describe, expect, it } from "vitest";

import {
  applyView,
  formatView,
  parseView,
  relativeTime,
  shortRevision,
  summarize,
  type HostJson,
} from "./wire.js";

function host(name: string, fields: Partial<HostJson> = {}): HostJson {
  return {
    host: `${name}.example.com`,
    displayName: name,
    local: false,
    current: "aaaa",
    booted: "aaaa",
    nextboot: "aaaa",
    online: true,
    rebootRequired: false,
    updatedAt: null,
    ...fields,
  };
}

describe("the view in the URL", () => {
  it("round-trips filter, sort, direction and the only-filter, leaving defaults out", () => {
    const view = { q: "web 0", sort: "current" as const, desc: true, only: "pending" as const };
    expect(parseView(formatView(view))).toEqual(view);
    expect(formatView(parseView(""))).toBe("");
  });

  it("falls back to the defaults for unknown values", () => {
    expect(parseView("?sort=%3Cscript%3E&only=everything&dir=up")).toEqual({
      q: "",
      sort: "host",
      desc: false,
      only: null,
    });
  });
});

describe("applyView", () => {
  const hosts = [
    host("web10"),
    host("web2", { current: "bbbb", booted: "bbbb", nextboot: "bbbb", online: false }),
    host("db1", { nextboot: "cccc", rebootRequired: true }),
  ];

  it("sorts host names with numbers as numbers, and reverses", () => {
    const view = parseView("");
    expect(applyView(hosts, view).map((h) => h.displayName)).toEqual(["db1", "web2", "web10"]);
    expect(applyView(hosts, { ...view, desc: true }).map((h) => h.displayName)).toEqual([
      "web10",
      "web2",
      "db1",
    ]);
  });

  it("filters by host or revision, any case, and by the summary's counts", () => {
    expect(applyView(hosts, parseView("?q=WEB")).map((h) => h.displayName)).toEqual([
      "web2",
      "web10",
    ]);
    expect(applyView(hosts, parseView("?q=bbb")).map((h) => h.displayName)).toEqual(["web2"]);
    expect(applyView(hosts, parseView("?only=offline")).map((h) => h.displayName)).toEqual([
      "web2",
    ]);
    expect(applyView(hosts, parseView("?only=pending")).map((h) => h.displayName)).toEqual(["db1"]);
    expect(applyView(hosts, parseView("?only=reboot")).map((h) => h.displayName)).toEqual(["db1"]);
  });

  it("sorts unknown values after known ones", () => {
    const withUnknown = [host("a", { current: null }), host("b", { current: "zz" })];
    expect(applyView(withUnknown, parseView("?sort=current")).map((h) => h.displayName)).toEqual([
      "b",
      "a",
    ]);
  });
});

describe("summarize", () => {
  it("counts hosts per current revision, most first, and the offline, reboot and pending ones", () => {
    const summary = summarize([
      host("a"),
      host("b"),
      host("c", { current: "bbbb", booted: "aaaa", online: false, rebootRequired: true }),
    ]);
    expect(summary).toEqual({
      revisions: [
        { revision: "aaaa", hosts: 2 },
        { revision: "bbbb", hosts: 1 },
      ],
      total: 3,
      offline: 1,
      reboot: 1,
      pending: 1,
    });
  });
});

describe("text helpers", () => {
  it("says how long ago, and unknown for nothing or nonsense", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    expect(relativeTime("2026-01-01T11:59:48Z", now)).toBe("12 s ago");
    expect(relativeTime("2026-01-01T11:58:00Z", now)).toBe("2 min ago");
    expect(relativeTime("2026-01-01T09:00:00Z", now)).toBe("3 h ago");
    expect(relativeTime("2025-12-25T12:00:00Z", now)).toBe("7 d ago");
    expect(relativeTime(null, now)).toBe("unknown");
    expect(relativeTime("yesterday", now)).toBe("unknown");
  });

  it("cuts revisions to 12 code points", () => {
    expect(shortRevision("a1b2c3d4e5f6a7b8")).toBe("a1b2c3d4e5f6");
    expect(shortRevision("🥾🥾🥾🥾🥾🥾🥾🥾🥾🥾🥾🥾🥾")).toBe("🥾".repeat(12));
  });
});
