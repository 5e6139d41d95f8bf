import { describe, expect, it } from "vitest";

import { locateKeys } from "./schema.js";

describe("locateKeys", () => {
  it("maps tables, keys and dotted keys to their lines", () => {
    const lines = locateKeys(
      [
        "# comment",
        "[ogygia]",
        'domain = "x"',
        "",
        "[ogygia.etcd] # trailing comment",
        "  endpoints = []",
        "sub.key = 1",
      ].join("\n"),
    );
    expect(lines.get("ogygia")).toBe(2);
    expect(lines.get("ogygia.domain")).toBe(3);
    expect(lines.get("ogygia.etcd")).toBe(5);
    expect(lines.get("ogygia.etcd.endpoints")).toBe(6);
    expect(lines.get("ogygia.etcd.sub.key")).toBe(7);
  });

  it("ignores what it cannot follow instead of guessing", () => {
    const lines = locateKeys('[[array.of.tables]]\n"quoted key" = 1\n');
    expect(lines.size).toBe(0);
  });
});
