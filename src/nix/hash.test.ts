import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { compressHash, convertHash, formatHash, hashBytes, hashEquals, parseHash } from "./hash.js";

const HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const NIX32 = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
const SRI = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

describe("hashes", () => {
  it("parses every spelling Nix accepts to the same digest", () => {
    const expected = hashBytes("sha256", "");
    for (const text of [
      `sha256:${HEX}`,
      `sha256:${HEX.toUpperCase()}`,
      `sha256:${NIX32}`,
      `sha256:${SRI.slice(7)}`,
      SRI,
    ]) {
      expect(hashEquals(parseHash(text), expected)).toBe(true);
    }
    expect(hashEquals(parseHash(NIX32, "sha256"), expected)).toBe(true);
  });

  it("formats as the store database, narinfo and nix path-info --json do", () => {
    const hash = parseHash(SRI);
    expect(formatHash(hash, "base16")).toBe(`sha256:${HEX}`);
    expect(formatHash(hash, "nix32")).toBe(`sha256:${NIX32}`);
    expect(formatHash(hash, "nix32", false)).toBe(NIX32);
    expect(formatHash(hash, "sri")).toBe(SRI);
    expect(convertHash(`sha256:${HEX}`)).toBe(`sha256:${NIX32}`);
    expect(convertHash(`sha256:${NIX32}`, "sri")).toBe(SRI);
  });

  it("handles the other algorithms Nix knows", () => {
    expect(formatHash(parseHash("sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709"), "nix32")).toBe(
      "sha1:143xibwh31h9bvxzalr0sjvbbvpa6ffs",
    );
    expect(parseHash("md5:3y8bwfr609h3lh9ch0izcqq7fl").digest.toString("hex")).toBe(
      "d41d8cd98f00b204e9800998ecf8427e",
    );
    expect(parseHash(formatHash(hashBytes("sha512", "x"), "nix32")).algorithm).toBe("sha512");
  });

  it("rejects unknown algorithms, wrong lengths, bad characters and missing prefixes", () => {
    for (const bad of [
      `sha257:${HEX}`,
      `sha256:${HEX.slice(1)}`,
      `sha256:${HEX.slice(0, -1)}g`,
      `sha256:${NIX32.slice(0, -1)}e`,
      "sha256-!!!!",
      "sha256-AAAA",
      HEX,
      "",
    ]) {
      expect(() => parseHash(bad), bad).toThrow(OgygiaError);
    }
    expect(() => parseHash(`sha1:${HEX}`, "sha256")).toThrow(/expected a sha256/);
  });

  it("folds a digest like Nix's compressHash", () => {
    const folded = compressHash(Buffer.from([1, 2, 3, 4, 5, 6]), 4);
    expect([...folded]).toEqual([1 ^ 5, 2 ^ 6, 3, 4]);
  });
});
