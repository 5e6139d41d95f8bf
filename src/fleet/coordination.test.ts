import { describe, expect, it } from "vitest";

import { checkKey, parentKey } from "./coordination.js";

describe("checkKey", () => {
  it("accepts absolute paths of non-empty segments", () => {
    for (const key of ["/a", "/ogygia/locks/wave-1", "/a b/ü/.hidden"]) {
      expect(() => {
        checkKey(key);
      }).not.toThrow();
    }
  });

  it("refuses relative, empty, trailing-slash, dot and NUL keys", () => {
    for (const key of ["", "/", "a/b", "/a/", "//a", "/a//b", "/a/./b", "/a/..", "/a\0b"]) {
      expect(() => {
        checkKey(key);
      }).toThrow(/not a coordination key/);
    }
  });
});

describe("parentKey", () => {
  it("drops the last segment, down to the root", () => {
    expect(parentKey("/a/b/c")).toBe("/a/b");
    expect(parentKey("/a")).toBe("/");
  });
});
