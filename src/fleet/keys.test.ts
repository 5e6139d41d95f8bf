import { describe, expect, it } from "vitest";

import { fieldKey, snapshotFromPairs, splitHostKey } from "./index.js";

const value = (text: string): Uint8Array => Buffer.from(text);

describe("key layout", () => {
  it("builds <namespace>/<host>/<field>", () => {
    expect(fieldKey("/nixos/versions", "web01", "nextboot")).toBe("/nixos/versions/web01/nextboot");
  });

  it("splits host and field, refusing other shapes", () => {
    expect(splitHostKey("web01/current")).toEqual({ host: "web01", field: "current" });
    expect(splitHostKey("web01/current/extra")).toBeUndefined();
    expect(splitHostKey("web01")).toBeUndefined();
    expect(splitHostKey("/current")).toBeUndefined();
    expect(splitHostKey("web01/colour")).toBeUndefined();
    expect(splitHostKey("../current")).toBeUndefined();
  });

  it("groups pairs by host and counts stray keys", () => {
    const snapshot = snapshotFromPairs("/ns/", [
      { key: "/ns/web01/current", value: value("a") },
      { key: "/ns/web01/booted", value: value("b") },
      { key: "/ns/web02/nextboot", value: value("c") },
      { key: "/ns/web02", value: value("stray") },
      { key: "/ns/web02/deep/current", value: value("stray") },
      { key: "/other/web03/current", value: value("stray") },
    ]);
    expect([...snapshot.hosts.keys()]).toEqual(["web01", "web02"]);
    expect(snapshot.hosts.get("web01")?.get("booted")).toEqual(value("b"));
    expect(snapshot.strayKeys).toBe(3);
  });
});
