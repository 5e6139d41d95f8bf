import { describe, expect, it } from "vitest";

import { closestMatch, editDistance } from "./suggest.js";

describe("editDistance", () => {
  it("counts a swap of two neighbours as one edit", () => {
    expect(editDistance("stauts", "status")).toBe(1);
    expect(editDistance("ab", "ba")).toBe(1);
  });

  it("counts insertions, deletions and substitutions", () => {
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("abc", "")).toBe(3);
    expect(editDistance("jsn", "json")).toBe(1);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("same", "same")).toBe(0);
  });
});

describe("closestMatch", () => {
  const commands = ["status", "publish", "iris", "config", "completion", "help"];

  it("suggests the command a typo was meant to be", () => {
    expect(closestMatch("stauts", commands)).toBe("status");
    expect(closestMatch("pubish", commands)).toBe("publish");
    expect(closestMatch("iirs", commands)).toBe("iris");
    expect(closestMatch("STATUS", commands)).toBe("status");
  });

  it("suggests an option from a prefix or a typo", () => {
    expect(closestMatch("--jsn", ["--json", "--watch", "--root"])).toBe("--json");
    expect(closestMatch("--wat", ["--json", "--watch", "--root"])).toBe("--watch");
  });

  it("suggests nothing for a word far from every candidate", () => {
    expect(closestMatch("deploy", commands)).toBeUndefined();
    expect(closestMatch("x", commands)).toBeUndefined();
    expect(closestMatch("", commands)).toBeUndefined();
  });
});
