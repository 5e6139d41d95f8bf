import { createHash } from "node:crypto";

import { describe, expect, it } from "vitest";

import { OgygiaError } from "../../core/index.js";
import { NIX32_ALPHABET, encodeNix32 } from "../../nix/index.js";
import { prng, randomInt } from "../../../test/support/nix.js";
import {
  MAX_BLOOM_BITS,
  MAX_BLOOM_CAPACITY,
  MIN_BLOOM_CAPACITY,
  bloomByteLength,
  bloomEtag,
  bloomParameters,
  buildBloom,
  createBloom,
  expectedFalsePositiveRate,
  parseBloom,
  sameBloom,
  serializeBloom,
  type BloomFilter,
} from "./bloom.js";

// Fixed seeds everywhere: a failure reproduces, and names its seed or iteration.
const SEED = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
const HEADER = 56;
const MAX_BYTES = 1 << 24;

function randomHashParts(random: () => number, count: number): string[] {
  const out: string[] = [];
  const chars = Buffer.alloc(32);
  for (let n = 0; n < count; n++) {
    for (let i = 0; i < 32; i++) chars[i] = NIX32_ALPHABET.charCodeAt(randomInt(random, 32));
    out.push(chars.toString("latin1"));
  }
  return out;
}

/** Hash parts of 20-byte big-endian counters: as structured as fixtures get. */
function counterHashParts(from: number, count: number): string[] {
  const out: string[] = [];
  const bytes = Buffer.alloc(20);
  for (let n = from; n < from + count; n++) {
    bytes.writeUInt32BE(n, 16);
    out.push(encodeNix32(bytes));
  }
  return out;
}

function falsePositives(filter: BloomFilter, queries: readonly string[]): number {
  let hits = 0;
  for (const q of queries) if (filter.has(q)) hits += 1;
  return hits;
}

/** MurmurHash3_x86_32 over any bytes, written from the reference, for cross-checking. */
function murmur3(bytes: Uint8Array, seed: number): number {
  let h = seed >>> 0;
  const blocks = bytes.length >>> 2;
  const k32 = (k: number): number => {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    return Math.imul(k, 0x1b873593);
  };
  for (let b = 0; b < blocks; b++) {
    const i = b * 4;
    const k =
      (bytes[i] ?? 0) |
      ((bytes[i + 1] ?? 0) << 8) |
      ((bytes[i + 2] ?? 0) << 16) |
      ((bytes[i + 3] ?? 0) << 24);
    h ^= k32(k);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  let k = 0;
  const rest = bytes.length & 3;
  if (rest >= 3) k ^= (bytes[tail + 2] ?? 0) << 16;
  if (rest >= 2) k ^= (bytes[tail + 1] ?? 0) << 8;
  if (rest >= 1) {
    k ^= bytes[tail] ?? 0;
    h ^= k32(k);
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bit indexes of a hash part exactly as docs/bloom-format.md specifies them. */
function specIndexes(hashPart: string, bits: number, hashes: number, seed: Buffer): number[] {
  const ascii = Buffer.from(hashPart, "latin1");
  let x = murmur3(ascii, seed.readUInt32LE(0)) % bits;
  let y = murmur3(ascii, seed.readUInt32LE(4)) % bits;
  const out = [x];
  for (let i = 1; i < hashes; i++) {
    x = (x + y) % bits;
    y = (y + i) % bits;
    out.push(x);
  }
  return out;
}

function setIndexes(bytes: Buffer): number[] {
  const bits = Number(bytes.readBigUInt64LE(16));
  const out: number[] = [];
  for (let j = 0; j < bits; j++) {
    if (((bytes[HEADER + (j >>> 3)] ?? 0) & (1 << (j & 7))) !== 0) out.push(j);
  }
  return out;
}

/** Recomputes the trailing checksum, so a header edit reaches the checks after it. */
function reseal(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  const end = out.length - 32;
  createHash("sha256").update(out.subarray(0, end)).digest().copy(out, end);
  return out;
}

function parseError(bytes: Uint8Array, maxBytes = MAX_BYTES): OgygiaError {
  try {
    parseBloom(bytes, { maxBytes });
  } catch (err) {
    if (err instanceof OgygiaError && err.code === "ERR_OGYGIA_IRISD_BLOOM") return err;
    throw err;
  }
  throw new Error("parseBloom accepted the input");
}

function smallFilter(): { filter: BloomFilter; bytes: Buffer } {
  const filter = buildBloom(randomHashParts(prng(7), 500), { seed: SEED });
  return { filter, bytes: serializeBloom(filter) };
}

describe("bloomParameters", () => {
  it("sizes an empty or tiny store for the minimum capacity", () => {
    for (const paths of [0, 1, 10]) {
      expect(bloomParameters({ paths })).toEqual({
        capacity: MIN_BLOOM_CAPACITY,
        bits: 9856, // ceil(1024 × 9.585) = 9816, rounded up to 64
        hashes: 7,
        falsePositiveRate: 0.01,
        expectedFalsePositiveRate: expect.closeTo(0.01, 3) as number,
      });
    }
  });

  it("adds 25 % headroom and rounds m up by less than 64 bits over the optimum", () => {
    const params = bloomParameters({ paths: 1_000_000 });
    expect(params.capacity).toBe(1_250_000);
    expect(params.bits % 64).toBe(0);
    const optimum = -Math.log(0.01) / Math.LN2 ** 2;
    expect(params.bits).toBeGreaterThanOrEqual(params.capacity * optimum);
    expect(params.bits).toBeLessThan(params.capacity * optimum + 64 + 1);
    expect(params.hashes).toBe(7);
    // k is a whole number, so the rate at capacity is within 1 % of the design rate.
    expect(params.expectedFalsePositiveRate).toBeLessThanOrEqual(0.01 * 1.01);
  });

  it("follows the rate: k = 10 at 0.1 %, 30 at 1e-9, 1 at 50 %", () => {
    expect(bloomParameters({ paths: 5000, falsePositiveRate: 0.001, growth: 0 }).hashes).toBe(10);
    expect(bloomParameters({ paths: 5000, falsePositiveRate: 1e-9, growth: 0 }).hashes).toBe(30);
    expect(bloomParameters({ paths: 5000, falsePositiveRate: 0.5, growth: 0 }).hashes).toBe(1);
  });

  it("caps m at MAX_BLOOM_BITS and reports the higher rate that follows", () => {
    const params = bloomParameters({ paths: MAX_BLOOM_CAPACITY, falsePositiveRate: 1e-9 });
    expect(params.bits).toBe(MAX_BLOOM_BITS);
    expect(params.expectedFalsePositiveRate).toBeGreaterThan(1e-9);
  });

  it("refuses nonsense sizes and rates", () => {
    for (const options of [
      { paths: -1 },
      { paths: 1.5 },
      { paths: MAX_BLOOM_CAPACITY + 1 },
      { paths: 10, falsePositiveRate: 0 },
      { paths: 10, falsePositiveRate: 0.6 },
      { paths: 10, falsePositiveRate: Number.NaN },
      { paths: 10, growth: -0.1 },
      { paths: 10, growth: Number.NaN },
    ]) {
      expect(() => bloomParameters(options), JSON.stringify(options)).toThrow(RangeError);
    }
  });
});

describe("the filter", () => {
  it("never gives a false negative, for random and structured hash parts", () => {
    const parts = [...randomHashParts(prng(1), 20_000), ...counterHashParts(0, 20_000)];
    const filter = buildBloom(parts, { seed: SEED });
    for (const part of parts) if (!filter.has(part)) expect.fail(`false negative for ${part}`);
  });

  it.each([
    { rate: 0.01, paths: 20_000, queries: 200_000 },
    { rate: 0.001, paths: 10_000, queries: 500_000 },
  ])("keeps the false-positive rate near $rate on random queries", ({ rate, paths, queries }) => {
    const random = prng(0xb100_0001);
    const filter = createBloom({ paths, falsePositiveRate: rate, growth: 0, seed: SEED });
    for (const part of randomHashParts(random, paths)) filter.add(part);
    const theory = expectedFalsePositiveRate(filter.bits, filter.hashes, paths);
    expect(theory).toBeLessThanOrEqual(rate * 1.01);
    const measured = falsePositives(filter, randomHashParts(random, queries)) / queries;
    expect(measured).toBeGreaterThan(theory * 0.85);
    expect(measured).toBeLessThan(theory * 1.15);
    // The rate estimated from the fill agrees with the measured one.
    expect(filter.estimatedFalsePositiveRate()).toBeGreaterThan(measured * 0.85);
    expect(filter.estimatedFalsePositiveRate()).toBeLessThan(measured * 1.15);
  });

  it("keeps the false-positive rate for counter-like hash parts (every character is hashed)", () => {
    const filter = createBloom({ paths: 20_000, growth: 0, seed: SEED });
    for (const part of counterHashParts(0, 20_000)) filter.add(part);
    const queries = counterHashParts(1_000_000, 100_000);
    const theory = expectedFalsePositiveRate(filter.bits, filter.hashes, 20_000);
    const measured = falsePositives(filter, queries) / queries.length;
    expect(measured).toBeGreaterThan(theory * 0.8);
    expect(measured).toBeLessThan(theory * 1.2);
  });

  it("answers false, and refuses to add, anything that is not a hash part", () => {
    const part = "0c6kzph7l0dcbdld3lw2m3v4rj1wrvgb";
    const filter = buildBloom([part], { seed: SEED });
    expect(filter.has(part)).toBe(true);
    const invalid = [
      "",
      part.slice(0, 31),
      `${part}0`,
      part.toUpperCase(),
      `e${part.slice(1)}`, // e, o, t, u are not nix32
      `${part.slice(0, 31)}u`,
      `${part.slice(0, 16)}\u0000${part.slice(17)}`,
      // Same low byte as '0': a check on 8 bits only would accept it.
      `${String.fromCharCode(0x130)}${part.slice(1)}`,
      `${String.fromCharCode(0x3000 + part.charCodeAt(5))}${part.slice(1)}`,
      `${part.slice(0, 30)}\u{1f600}`,
    ];
    for (const text of invalid) {
      expect(filter.has(text), JSON.stringify(text)).toBe(false);
      expect(() => filter.add(text)).toThrow(
        expect.objectContaining({ code: "ERR_OGYGIA_IRISD_BLOOM" }) as Error,
      );
    }
    // A refused add changed nothing.
    expect(filter.count).toBe(1);
  });

  it("counts insertions once, tracks set bits, and reports when over capacity", () => {
    const filter = createBloom({ paths: 0, seed: SEED });
    const random = prng(3);
    expect(filter.count).toBe(0);
    const [first] = randomHashParts(random, 1);
    expect(filter.add(first ?? "")).toBe(true);
    expect(filter.add(first ?? "")).toBe(false);
    expect(filter.count).toBe(1);
    while (filter.count < filter.capacity) filter.add(randomHashParts(random, 1)[0] ?? "");
    expect(filter.overCapacity).toBe(false);
    while (!filter.add(randomHashParts(random, 1)[0] ?? ""));
    expect(filter.count).toBe(filter.capacity + 1);
    expect(filter.overCapacity).toBe(true);
    expect(filter.setBits).toBe(setIndexes(serializeBloom(filter)).length);
    expect(filter.count).toBeLessThanOrEqual(filter.setBits);
  });

  it("sets exactly the bits the format document specifies (MurmurHash3 pair, enhanced double hashing)", () => {
    // Published MurmurHash3_x86_32 vectors, so the reference below is the real thing.
    const vectors: [string, number, number][] = [
      ["", 0, 0],
      ["", 1, 0x514e28b7],
      ["\u00ff\u00ff\u00ff\u00ff", 0, 0x76293b50],
      ["!Ce\u0087", 0x5082edee, 0x2362f9de],
      ["!Ce", 0, 0x7e4a8634],
      ["aaaa", 0x9747b28c, 0x5a97808a],
      ["The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd],
    ];
    for (const [text, seed, hash] of vectors) {
      expect(murmur3(Buffer.from(text, "latin1"), seed), text).toBe(hash);
    }
    // The worked example of docs/bloom-format.md.
    const example = "0c6kzph7l0dcbdld3lw2m3v4rj1wrvgb";
    const one = buildBloom([example], { seed: SEED });
    expect([one.bits, one.hashes]).toEqual([9856, 7]);
    expect(murmur3(Buffer.from(example), 0x04030201)).toBe(0x46c531fe);
    expect(murmur3(Buffer.from(example), 0x08070605)).toBe(0x5e8bcc1a);
    expect(specIndexes(example, 9856, 7, SEED)).toEqual([5758, 1176, 6451, 1872, 7152, 2580, 7869]);
    expect(setIndexes(serializeBloom(one))).toEqual([1176, 1872, 2580, 5758, 6451, 7152, 7869]);
    // And for many random parts and shapes, filter and specification agree.
    const random = prng(11);
    for (let round = 0; round < 50; round++) {
      const seed = Buffer.from(randomHashParts(random, 1)[0]?.slice(0, 8) ?? "", "latin1");
      const paths = randomInt(random, 5000);
      const rate = [0.5, 0.01, 1e-6][round % 3] ?? 0.01;
      const filter = createBloom({ paths, falsePositiveRate: rate, seed });
      const part = randomHashParts(random, 1)[0] ?? "";
      filter.add(part);
      const want = [...new Set(specIndexes(part, filter.bits, filter.hashes, seed))].sort(
        (a, b) => a - b,
      );
      expect(setIndexes(serializeBloom(filter)), `round ${round}`).toEqual(want);
    }
  });

  it("refuses a seed that is not 8 bytes with differing halves", () => {
    expect(() => createBloom({ paths: 1, seed: Buffer.alloc(7) })).toThrow(RangeError);
    expect(() => createBloom({ paths: 1, seed: Buffer.from([1, 2, 3, 4, 1, 2, 3, 4]) })).toThrow(
      RangeError,
    );
  });

  it("draws a fresh random seed per filter by default", () => {
    const a = createBloom({ paths: 10 });
    const b = createBloom({ paths: 10 });
    expect(serializeBloom(a).subarray(48, 56)).not.toEqual(serializeBloom(b).subarray(48, 56));
    expect(sameBloom(a, b)).toBe(false);
  });
});

describe("the wire format", () => {
  it("round-trips: same bytes, same answers, same ETag, and the parsed filter still grows", () => {
    const random = prng(5);
    const parts = randomHashParts(random, 3000);
    const filter = buildBloom(parts, { seed: SEED, falsePositiveRate: 0.001 });
    const bytes = serializeBloom(filter);
    expect(bytes.length).toBe(bloomByteLength(filter.bits));
    const parsed = parseBloom(bytes, { maxBytes: bytes.length });
    expect(sameBloom(parsed, filter)).toBe(true);
    expect(serializeBloom(parsed)).toEqual(bytes);
    expect(bloomEtag(parsed)).toBe(bloomEtag(filter));
    expect(fields(parsed)).toEqual(fields(filter));
    for (const q of [...parts, ...randomHashParts(random, 3000)]) {
      if (parsed.has(q) !== filter.has(q)) expect.fail(`answers differ for ${q}`);
    }
    const extra = randomHashParts(random, 1)[0] ?? "";
    expect(parsed.add(extra)).toBe(true);
    expect(parsed.has(extra)).toBe(true);
    expect(sameBloom(parsed, filter)).toBe(false);
    expect(bloomEtag(parsed)).not.toBe(bloomEtag(filter));

    function fields(f: BloomFilter): Record<string, number> {
      return {
        bits: f.bits,
        hashes: f.hashes,
        capacity: f.capacity,
        count: f.count,
        setBits: f.setBits,
        falsePositiveRate: f.falsePositiveRate,
      };
    }
  });

  it("reads from any Uint8Array view, and copies the bits out of it", () => {
    const { filter, bytes } = smallFilter();
    const backing = new Uint8Array(bytes.length + 3);
    backing.set(bytes, 3);
    const parsed = parseBloom(backing.subarray(3), { maxBytes: MAX_BYTES });
    backing.fill(0xff);
    expect(sameBloom(parsed, filter)).toBe(true);
  });

  it("writes the documented header and checksum (the worked example)", () => {
    const bytes = serializeBloom(buildBloom(["0c6kzph7l0dcbdld3lw2m3v4rj1wrvgb"], { seed: SEED }));
    expect(bytes.subarray(0, HEADER).toString("hex")).toBe(
      "894952495342460a" + // magic "\x89IRISBF\n"
        "0100" + // version 1
        "01" + // hash scheme 1
        "07" + // k
        "00000000" + // reserved
        "8026000000000000" + // m = 9856
        "0004000000000000" + // capacity = 1024
        "0100000000000000" + // count = 1
        "7b14ae47e17a843f" + // 0.01 as f64
        "0102030405060708", // seed
    );
    expect(bytes.length).toBe(HEADER + 9856 / 8 + 32);
    expect(bytes.subarray(HEADER + 9856 / 8).toString("hex")).toBe(
      "1c0df553e310e0865c39fe4bbf0fcf1d1036833dc88bf444199b8c1f16ddd729",
    );
  });

  it("gives an ETag that changes with the filter and not with a repeated add", () => {
    const filter = createBloom({ paths: 10, seed: SEED });
    const empty = bloomEtag(filter);
    expect(empty).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    filter.add("0c6kzph7l0dcbdld3lw2m3v4rj1wrvgb");
    const one = bloomEtag(filter);
    expect(one).not.toBe(empty);
    filter.add("0c6kzph7l0dcbdld3lw2m3v4rj1wrvgb");
    expect(bloomEtag(filter)).toBe(one);
    const bytes = serializeBloom(filter);
    expect(one).toBe(`"${bytes.subarray(bytes.length - 32).toString("base64url")}"`);
  });

  it("tells identical filters from ones differing in one bit or the seed", () => {
    const parts = randomHashParts(prng(9), 100);
    const a = buildBloom(parts, { seed: SEED });
    expect(sameBloom(a, buildBloom(parts, { seed: SEED }))).toBe(true);
    expect(sameBloom(a, buildBloom(parts.slice(1), { seed: SEED }))).toBe(false);
    const otherSeed = Buffer.from([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(sameBloom(a, buildBloom(parts, { seed: otherSeed }))).toBe(false);
  });

  describe("refuses hostile input with ERR_OGYGIA_IRISD_BLOOM", () => {
    const { bytes } = smallFilter();
    const edit = (at: number, write: (b: Buffer) => void, sealed = true): Buffer => {
      const out = Buffer.from(bytes);
      write(out.subarray(at));
      return sealed ? reseal(out) : out;
    };

    it.each([
      ["bad magic", edit(0, (b) => b.write("IRISBF")), /bad magic/],
      ["an empty body", Buffer.alloc(0), /too short for the format version/],
      ["a bare magic", bytes.subarray(0, 8), /too short for the format version/],
      ["a newer version", edit(8, (b) => b.writeUInt16LE(2)), /format version 2 is not supported/],
      ["version 0", edit(8, (b) => b.writeUInt16LE(0)), /format version 0 is not supported/],
      ["a cut header", bytes.subarray(0, 40), /shorter than the 56-byte header/],
      ["an unknown hash scheme", edit(10, (b) => b.writeUInt8(9)), /unknown hash scheme 9/],
      ["k = 0", edit(11, (b) => b.writeUInt8(0)), /hash count 0 is out of range/],
      ["k = 33", edit(11, (b) => b.writeUInt8(33)), /hash count 33 is out of range/],
      ["reserved bytes set", edit(12, (b) => b.writeUInt8(1)), /reserved header bytes/],
      ["m = 0", edit(16, (b) => b.writeBigUInt64LE(0n)), /bit count 0 is not/],
      ["m not a multiple of 64", edit(16, (b) => b.writeBigUInt64LE(9857n)), /bit count 9857/],
      ["m = 2^31", edit(16, (b) => b.writeBigUInt64LE(2n ** 31n)), /bit count 2147483648/],
      [
        "m = 2^64 - 1",
        edit(16, (b) => b.writeBigUInt64LE(2n ** 64n - 1n)),
        /bit count 18446744073709551615/,
      ],
      ["m = 2^32 + 64", edit(16, (b) => b.writeBigUInt64LE(2n ** 32n + 64n)), /bit count/],
      ["m larger than the body", edit(16, (b) => b.writeBigUInt64LE(9920n)), /truncated/],
      ["m smaller than the body", edit(16, (b) => b.writeBigUInt64LE(9792n)), /trailing bytes/],
      ["capacity 0", edit(24, (b) => b.writeBigUInt64LE(0n)), /capacity 0 is out of range/],
      ["capacity above m", edit(24, (b) => b.writeBigUInt64LE(9857n)), /capacity 9857/],
      ["count above m", edit(32, (b) => b.writeBigUInt64LE(9857n)), /count 9857 exceeds the bit/],
      ["count above the set bits", edit(32, (b) => b.writeBigUInt64LE(9000n)), /bits set/],
      ["a zero rate", edit(40, (b) => b.writeDoubleLE(0)), /false-positive rate 0 is out/],
      ["a NaN rate", edit(40, (b) => b.writeDoubleLE(Number.NaN)), /rate NaN is out/],
      ["a rate above 0.5", edit(40, (b) => b.writeDoubleLE(0.75)), /rate 0.75 is out/],
      [
        "a flipped body bit",
        edit(HEADER + 100, (b) => (b[0] = (b[0] ?? 0) ^ 4), false),
        /checksum/,
      ],
      ["a flipped checksum bit", edit(bytes.length - 1, (b) => (b[0] = 1), false), /checksum/],
      ["an unsealed header edit", edit(48, (b) => b.writeUInt8(99), false), /checksum/],
      ["a truncated body", bytes.subarray(0, bytes.length - 1), /truncated/],
      ["an extended body", Buffer.concat([bytes, Buffer.alloc(1)]), /trailing bytes/],
    ])("%s", (_name, input, message) => {
      expect(parseError(input).message).toMatch(message);
    });

    it("says how to get past a newer version", () => {
      expect(parseError(edit(8, (b) => b.writeUInt16LE(7))).hint).toMatch(/upgrade/);
    });

    it("enforces maxBytes on the input and on what the header declares, before copying", () => {
      expect(parseError(bytes, bytes.length - 1).message).toMatch(/more than the limit/);
      // A 56-byte header that claims 128 MiB of bits: refused without reading further.
      const liar = edit(16, (b) => b.writeBigUInt64LE(BigInt(MAX_BLOOM_BITS)), false).subarray(
        0,
        HEADER,
      );
      expect(parseError(liar, 1 << 20).message).toMatch(/declares 134217816 bytes, more than/);
      expect(parseError(liar, 1 << 30).message).toMatch(/56 bytes, but its header declares/);
    });

    it("names the source, escaped", () => {
      const err = (() => {
        try {
          parseBloom(Buffer.alloc(3), { maxBytes: 100, source: "http://peer\u001b[31m/bloom" });
        } catch (e) {
          return e as Error;
        }
        return new Error("accepted");
      })();
      expect(err.message).toContain("bloom filter from http://peer\\x1b[31m/bloom: bad magic");
    });

    it("at every truncation length", () => {
      for (let cut = 0; cut < bytes.length; cut++) parseError(bytes.subarray(0, cut));
    });

    it("for every single-bit flip in the header and checksum", () => {
      for (const at of [...Array(HEADER).keys(), bytes.length - 32, bytes.length - 1]) {
        for (let bit = 0; bit < 8; bit++) {
          const flipped = Buffer.from(bytes);
          flipped[at] = (flipped[at] ?? 0) ^ (1 << bit);
          parseError(flipped);
        }
      }
    });
  });

  it("fuzz: random mutations give our error or a filter that re-serialises to the same bytes", () => {
    const random = prng(0xf022_0001);
    const bases = [
      serializeBloom(createBloom({ paths: 0, seed: SEED })),
      serializeBloom(buildBloom(randomHashParts(random, 300), { seed: SEED })),
      serializeBloom(
        buildBloom(randomHashParts(random, 50), { seed: SEED, falsePositiveRate: 0.5 }),
      ),
    ];
    let accepted = 0;
    let refused = 0;
    for (let iteration = 0; iteration < 3000; iteration++) {
      const base = bases[iteration % bases.length] ?? Buffer.alloc(0);
      let bytes: Buffer = Buffer.from(base);
      for (let e = 1 + randomInt(random, 3); e > 0 && bytes.length > 0; e--) {
        // Most edits land in the header, where the parsing decisions are.
        const at = random() < 0.7 ? randomInt(random, HEADER) : randomInt(random, bytes.length);
        switch (randomInt(random, 6)) {
          case 0:
            bytes[at] = (bytes[at] ?? 0) ^ (1 << randomInt(random, 8));
            break;
          case 1:
            bytes[at] = randomInt(random, 256);
            break;
          case 2: {
            const word = at - (at % 8);
            if (word + 8 > bytes.length) break;
            const choices = [0n, 1n, 64n, 9856n, 2n ** 30n, 2n ** 64n - 1n, BigInt(at)];
            bytes.writeBigUInt64LE(choices[randomInt(random, choices.length)] ?? 0n, word);
            break;
          }
          case 3:
            bytes = bytes.subarray(0, at);
            break;
          case 4:
            bytes = Buffer.concat([bytes, Buffer.alloc(1 + randomInt(random, 80))]);
            break;
          default:
            bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
        }
      }
      // Half are resealed so the checks behind the checksum see the edits too.
      if (random() < 0.5 && bytes.length >= 32) bytes = reseal(bytes);
      let filter: BloomFilter;
      try {
        filter = parseBloom(bytes, { maxBytes: 64 * 1024 });
      } catch (err) {
        if (!(err instanceof OgygiaError) || err.code !== "ERR_OGYGIA_IRISD_BLOOM") {
          throw new Error(`iteration ${iteration}: not our error`, { cause: err });
        }
        refused += 1;
        continue;
      }
      accepted += 1;
      expect(serializeBloom(filter).equals(bytes), `iteration ${iteration}`).toBe(true);
      expect(filter.count).toBeLessThanOrEqual(filter.setBits);
      filter.has("0c6kzph7l0dcbdld3lw2m3v4rj1wrvgb");
    }
    // Both outcomes happen, so the loop exercises more than the first check.
    expect(accepted).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(1000);
  });
});
