import { createHash } from "node:crypto";

import { describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { decodeNix32, encodeNix32, isNix32, nix32Length } from "./nix32.js";

// Vectors from `nix hash to-base32` (Nix 2.8).
const VECTORS: [string, string][] = [
  [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
  ],
  [
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "1zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
  ],
  [
    "0000000000000000000000000000000000000000000000000000000000000001",
    "0080000000000000000000000000000000000000000000000000",
  ],
  [
    "1000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000h",
  ],
  ["da39a3ee5e6b4b0d3255bfef95601890afd80709", "143xibwh31h9bvxzalr0sjvbbvpa6ffs"],
  ["d41d8cd98f00b204e9800998ecf8427e", "3y8bwfr609h3lh9ch0izcqq7fl"],
];

describe("nix32", () => {
  it("encodes digests exactly as nix hash to-base32", () => {
    for (const [hex, nix32] of VECTORS) {
      expect(encodeNix32(Buffer.from(hex, "hex"))).toBe(nix32);
    }
  });

  it("decodes what it encodes, for the Nix vectors and random digests of every hash size", () => {
    for (const [hex, nix32] of VECTORS) {
      expect(decodeNix32(nix32).toString("hex")).toBe(hex);
    }
    for (const size of [16, 20, 32, 64]) {
      for (let i = 0; i < 50; i++) {
        const digest = createHash("sha512").update(`${size}-${i}`).digest().subarray(0, size);
        const text = encodeNix32(digest);
        expect(text).toHaveLength(nix32Length(size));
        expect(isNix32(text)).toBe(true);
        expect(decodeNix32(text, size).equals(digest)).toBe(true);
      }
    }
  });

  it("gives the lengths Nix uses: 32 for a store path hash, 52 for SHA-256", () => {
    expect(nix32Length(20)).toBe(32);
    expect(nix32Length(32)).toBe(52);
    expect(nix32Length(64)).toBe(103);
    expect(nix32Length(16)).toBe(26);
  });

  it("rejects characters outside Nix's alphabet (e, o, t, u and upper case)", () => {
    for (const bad of ["e", "o", "t", "u", "A", "-", "é"]) {
      const text = `${bad}${"0".repeat(51)}`;
      expect(isNix32(text)).toBe(false);
      expect(() => decodeNix32(text)).toThrow(OgygiaError);
    }
  });

  it("rejects bits set beyond the digest and lengths that encode no digest size", () => {
    // The first character carries only 1 bit of a 32-byte digest (256 = 51*5 + 1).
    expect(() => decodeNix32(`2${"0".repeat(51)}`, 32)).toThrow(/bits set beyond/);
    expect(() => decodeNix32("0".repeat(51), 32)).toThrow(/length/);
  });
});
