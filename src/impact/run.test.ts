import { describe, expect, it } from "vitest";

import { diffPackages } from "./diff.js";
import { matchesPattern, parsePattern } from "./run.js";

const P = (name: string): string => `/nix/store/0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a-${name}`;

describe("parsePattern and matchesPattern", () => {
  it("reads names, name-versions and ranges as Nix splits and compares them", () => {
    expect(parsePattern("openssl")).toEqual({
      kind: "package",
      name: "openssl",
      op: undefined,
      version: "",
    });
    expect(parsePattern("openssl-3.0.7")).toEqual({
      kind: "package",
      name: "openssl",
      op: "=",
      version: "3.0.7",
    });
    expect(parsePattern("openssl<3.0.8")).toEqual({
      kind: "package",
      name: "openssl",
      op: "<",
      version: "3.0.8",
    });
    expect(parsePattern("apache-httpd>=2.4")).toMatchObject({ name: "apache-httpd", op: ">=" });
  });

  it("matches outputs of a package and compares versions numerically", () => {
    const below = parsePattern("openssl<3.0.10");
    expect(matchesPattern(below, P("openssl-3.0.8-bin"))).toBe(true);
    expect(matchesPattern(below, P("openssl-3.0.10"))).toBe(false);
    expect(matchesPattern(parsePattern("openssl"), P("openssl-1.1.1w"))).toBe(true);
    expect(matchesPattern(parsePattern("openssl"), P("openssl-tools-1.0"))).toBe(false);
    expect(matchesPattern(parsePattern("libfoo-1.0"), P("libfoo-1.0.1"))).toBe(false);
  });
});

describe("diffPackages", () => {
  it("reports version changes, additions and removals, with several versions of one name", () => {
    const diff = diffPackages(
      [P("libfoo-1.0"), P("libfoo-2.0"), P("gone-1"), P("same-1.0")],
      [P("libfoo-1.1"), P("libfoo-2.0"), P("new-3"), P("same-1.0-dev")],
    );
    expect(diff).toEqual({
      changed: [{ name: "libfoo", before: ["1.0"], after: ["1.1"] }],
      added: [{ name: "new", versions: ["3"] }],
      removed: [{ name: "gone", versions: ["1"] }],
    });
  });
});
