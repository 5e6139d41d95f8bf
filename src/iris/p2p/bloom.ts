/**
 * The bloom filter irisd keeps over the hash parts of its serveable store
 * paths, and its versioned wire format (`docs/bloom-format.md`, byte by byte).
 *
 * Hashing: the 32 ASCII bytes of a hash part go through two MurmurHash3
 * (x86, 32-bit) runs seeded by the filter's own 8-byte seed, giving h1 and
 * h2; the k bit indexes follow by enhanced double hashing (Dillinger and
 * Manolios): x = h1 mod m, y = h2 mod m, then x += y, y += i (mod m). Every
 * input character is used, so fixtures with structured hash parts fill the
 * filter as well as real ones, and a per-filter random seed keeps the false
 * positives of two hosts holding nearly the same paths independent, so one
 * query is not a false positive at every peer at once.
 *
 * Sizing: for a capacity c and rate p, m = ceil(-c ln p / (ln 2)^2) rounded up
 * to a multiple of 64 and kept within [MIN_BLOOM_BITS, MAX_BLOOM_BITS], and
 * k = round((m / c) ln 2) within [1, MAX_BLOOM_HASHES]. The capacity is the
 * current path count plus growth headroom, at least MIN_BLOOM_CAPACITY.
 */

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

import { OgygiaError, escapeForTerminal } from "../../core/index.js";
import { NIX32_ALPHABET } from "../../nix/index.js";

/** The design false-positive rate when none is given (the `[bloom]` default). */
export const DEFAULT_BLOOM_FALSE_POSITIVE_RATE = 0.01;
/** Capacity headroom over the current path count: 0.25 sizes for 125 %. */
export const DEFAULT_BLOOM_GROWTH = 0.25;
/** The smallest capacity a new filter is sized for (an empty store included). */
export const MIN_BLOOM_CAPACITY = 1024;
/** The largest path count `createBloom` sizes for. */
export const MAX_BLOOM_CAPACITY = 2 ** 28;
/** Bounds of the bit count m; m is always a multiple of 64. */
export const MIN_BLOOM_BITS = 64;
/**
 * 2^30 bits (128 MiB): 112 million paths at 1 %. A larger need is capped here
 * (the rate at capacity then exceeds the design rate, as
 * `bloomParameters(...).expectedFalsePositiveRate` tells). m <= 2^30 also
 * keeps every index sum below 2^31, an int32.
 */
export const MAX_BLOOM_BITS = 2 ** 30;
/** Bounds of the hash count k (k is 30 at the smallest allowed rate). */
export const MAX_BLOOM_HASHES = 32;
/** Bounds of the design false-positive rate (the same as the configuration's). */
export const MIN_BLOOM_FALSE_POSITIVE_RATE = 1e-9;
export const MAX_BLOOM_FALSE_POSITIVE_RATE = 0.5;
/** A suggested `maxBytes` for peers' filters: 64 MiB, 44 million paths at 1 %. */
export const DEFAULT_MAX_BLOOM_BYTES = 64 * 1024 * 1024;

/** Wire format: the version this code writes and the only one it reads. */
export const BLOOM_FORMAT_VERSION = 1;
/** Hash scheme 1: MurmurHash3 x86_32 pair over the ASCII hash part, enhanced double hashing. */
export const BLOOM_HASH_SCHEME = 1;
const MAGIC = Buffer.from([0x89, 0x49, 0x52, 0x49, 0x53, 0x42, 0x46, 0x0a]); // "\x89IRISBF\n"
const HEADER_BYTES = 56;
const CHECKSUM_BYTES = 32;
const SEED_BYTES = 8;
const HASH_PART_CHARS = 32;

/** A bloom filter over store path hash parts. */
export interface BloomFilter {
  /** m, the number of bits (a multiple of 64). */
  readonly bits: number;
  /** k, the number of bit indexes per hash part. */
  readonly hashes: number;
  /** The number of paths the filter was sized for at `falsePositiveRate`. */
  readonly capacity: number;
  /** The design false-positive rate at `capacity` paths. */
  readonly falsePositiveRate: number;
  /** Insertions that set at least one new bit (a repeated `add` is not counted). */
  readonly count: number;
  /** Bits set to one. */
  readonly setBits: number;
  /** True once `count` exceeds `capacity`: time to rebuild with a new size. */
  readonly overCapacity: boolean;
  /**
   * True when `hashPart` may be in the set; false when it is certainly not.
   * Something that is not a hash part (32 nix32 characters) gives false.
   */
  has(hashPart: string): boolean;
  /**
   * Adds a hash part; returns true when it set a new bit (false: already
   * present, or a false positive). Throws `ERR_OGYGIA_IRISD_BLOOM` on a string
   * that is not a hash part.
   */
  add(hashPart: string): boolean;
  /** The false-positive rate for random queries now: (setBits / bits)^hashes. */
  estimatedFalsePositiveRate(): number;
}

export interface BloomSizeOptions {
  /** The number of paths the filter holds now; it is sized for more (`growth`). */
  paths: number;
  /** Design false-positive rate at capacity; defaults to 0.01. */
  falsePositiveRate?: number;
  /** Headroom: capacity = max(MIN_BLOOM_CAPACITY, ceil(paths × (1 + growth))). Defaults to 0.25. */
  growth?: number;
}

export interface BloomOptions extends BloomSizeOptions {
  /** 8 bytes whose two little-endian halves differ; random when omitted. */
  seed?: Uint8Array;
}

export interface BloomParameters {
  capacity: number;
  bits: number;
  hashes: number;
  falsePositiveRate: number;
  /** The rate at capacity with these m and k: above the design rate only when m was capped. */
  expectedFalsePositiveRate: number;
}

/** The filter's size for a path count and rate (see the module comment for the rules). */
export function bloomParameters(options: BloomSizeOptions): BloomParameters {
  const { paths } = options;
  const rate = options.falsePositiveRate ?? DEFAULT_BLOOM_FALSE_POSITIVE_RATE;
  const growth = options.growth ?? DEFAULT_BLOOM_GROWTH;
  if (!Number.isSafeInteger(paths) || paths < 0 || paths > MAX_BLOOM_CAPACITY) {
    throw new RangeError(`bloom filter paths must be an integer in 0..${MAX_BLOOM_CAPACITY}`);
  }
  if (!(rate >= MIN_BLOOM_FALSE_POSITIVE_RATE && rate <= MAX_BLOOM_FALSE_POSITIVE_RATE)) {
    throw new RangeError(
      `bloom filter false-positive rate must be in ${MIN_BLOOM_FALSE_POSITIVE_RATE}..${MAX_BLOOM_FALSE_POSITIVE_RATE}`,
    );
  }
  if (!(growth >= 0 && growth <= 10)) {
    throw new RangeError("bloom filter growth must be in 0..10");
  }
  const capacity = Math.min(
    MAX_BLOOM_CAPACITY,
    Math.max(MIN_BLOOM_CAPACITY, Math.ceil(paths * (1 + growth))),
  );
  const ideal = Math.ceil((-capacity * Math.log(rate)) / (Math.LN2 * Math.LN2));
  const bits = Math.min(MAX_BLOOM_BITS, Math.max(MIN_BLOOM_BITS, Math.ceil(ideal / 64) * 64));
  const hashes = Math.min(MAX_BLOOM_HASHES, Math.max(1, Math.round((bits / capacity) * Math.LN2)));
  return {
    capacity,
    bits,
    hashes,
    falsePositiveRate: rate,
    expectedFalsePositiveRate: expectedFalsePositiveRate(bits, hashes, capacity),
  };
}

/** The textbook false-positive rate of m bits and k hashes holding n paths: (1 - e^(-kn/m))^k. */
export function expectedFalsePositiveRate(bits: number, hashes: number, paths: number): number {
  return Math.pow(1 - Math.exp((-hashes * paths) / bits), hashes);
}

/** An empty filter sized by `bloomParameters`. */
export function createBloom(options: BloomOptions): BloomFilter {
  const params = bloomParameters(options);
  let seed: Buffer;
  if (options.seed === undefined) {
    do seed = randomBytes(SEED_BYTES);
    while (seed.readUInt32LE(0) === seed.readUInt32LE(4));
  } else {
    seed = Buffer.from(options.seed);
    if (seed.length !== SEED_BYTES || seed.readUInt32LE(0) === seed.readUInt32LE(4)) {
      throw new RangeError("a bloom filter seed is 8 bytes whose two 4-byte halves differ");
    }
  }
  return new Bloom({
    ...params,
    seed,
    array: new Uint8Array(params.bits / 8),
    count: 0,
    setBits: 0,
    digest: undefined,
  });
}

/** A filter sized for `hashParts.length` paths holding all of them; throws on one that is not a hash part. */
export function buildBloom(
  hashParts: readonly string[],
  options: Omit<BloomOptions, "paths"> = {},
): BloomFilter {
  const filter = createBloom({ ...options, paths: hashParts.length });
  for (const hashPart of hashParts) filter.add(hashPart);
  return filter;
}

/** The filter in the wire format: header, bit array, SHA-256 checksum. */
export function serializeBloom(filter: BloomFilter): Buffer {
  const bloom = asBloom(filter);
  const out = Buffer.allocUnsafe(bloomByteLength(bloom.bits));
  writeHeader(bloom, out);
  out.set(bloom.array, HEADER_BYTES);
  bloom.checksum().copy(out, HEADER_BYTES + bloom.array.length);
  return out;
}

/** The size in bytes of a serialised filter of `bits` bits. */
export function bloomByteLength(bits: number): number {
  return HEADER_BYTES + Math.ceil(bits / 8) + CHECKSUM_BYTES;
}

/**
 * A strong HTTP ETag for the filter (quoted): its wire checksum in base64url.
 * Cached until the next `add` that changes the filter; a parsed filter's ETag
 * is the checksum it arrived with.
 */
export function bloomEtag(filter: BloomFilter): string {
  return `"${asBloom(filter).checksum().toString("base64url")}"`;
}

/** True when two filters would serialise to the same bytes (parameters, seed, count and bits). */
export function sameBloom(a: BloomFilter, b: BloomFilter): boolean {
  const x = asBloom(a);
  const y = asBloom(b);
  return (
    x === y ||
    (x.bits === y.bits &&
      x.hashes === y.hashes &&
      x.capacity === y.capacity &&
      x.count === y.count &&
      x.falsePositiveRate === y.falsePositiveRate &&
      x.seeds[0] === y.seeds[0] &&
      x.seeds[1] === y.seeds[1] &&
      Buffer.compare(x.array, y.array) === 0)
  );
}

export interface ParseBloomOptions {
  /** Refuse input larger than this many bytes, and headers declaring more. */
  maxBytes: number;
  /** Names the origin in error messages (e.g. the peer's redacted URL). */
  source?: string;
}

/**
 * Parses a filter in the wire format, treating the bytes as hostile: every
 * field is checked and any fault is an `ERR_OGYGIA_IRISD_BLOOM` naming it.
 * The bit array is copied, so `bytes` may be reused afterwards.
 */
export function parseBloom(bytes: Uint8Array, options: ParseBloomOptions): BloomFilter {
  const { maxBytes } = options;
  const fail = (what: string, hint?: string): OgygiaError =>
    new OgygiaError(
      "ERR_OGYGIA_IRISD_BLOOM",
      `bloom filter${options.source === undefined ? "" : ` from ${escapeForTerminal(options.source)}`}: ${what}`,
      hint === undefined ? {} : { hint },
    );
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = input.length;
  if (length > maxBytes) throw fail(`${length} bytes, more than the limit of ${maxBytes}`);

  const magicLength = Math.min(length, MAGIC.length);
  if (input.compare(MAGIC, 0, magicLength, 0, magicLength) !== 0) {
    throw fail(
      `bad magic: not an ogygia bloom filter (it starts with ${input.subarray(0, 8).toString("hex") || "nothing"})`,
    );
  }
  if (length < 10) throw fail(`truncated: ${length} bytes, too short for the format version`);
  const version = input.readUInt16LE(8);
  if (version !== BLOOM_FORMAT_VERSION) {
    throw fail(
      `format version ${version} is not supported (this ogygia reads version ${BLOOM_FORMAT_VERSION})`,
      version > BLOOM_FORMAT_VERSION
        ? "the peer runs a newer ogygia-irisd; upgrade this host to use its filter"
        : undefined,
    );
  }
  if (length < HEADER_BYTES) {
    throw fail(`truncated: ${length} bytes, shorter than the ${HEADER_BYTES}-byte header`);
  }
  const scheme = input.readUInt8(10);
  if (scheme !== BLOOM_HASH_SCHEME) {
    throw fail(`unknown hash scheme ${scheme} (version 1 defines scheme ${BLOOM_HASH_SCHEME})`);
  }
  const hashes = input.readUInt8(11);
  if (hashes < 1 || hashes > MAX_BLOOM_HASHES) {
    throw fail(`hash count ${hashes} is out of range 1..${MAX_BLOOM_HASHES}`);
  }
  if (input.readUInt32LE(12) !== 0) throw fail("reserved header bytes 12..15 are not zero");
  const bits = readU64(input, 16);
  if (bits < MIN_BLOOM_BITS || bits > MAX_BLOOM_BITS || bits % 64 !== 0) {
    throw fail(
      `bit count ${describeU64(input, 16)} is not a multiple of 64 in ${MIN_BLOOM_BITS}..${MAX_BLOOM_BITS}`,
    );
  }
  const capacity = readU64(input, 24);
  if (capacity < 1 || capacity > bits) {
    throw fail(`capacity ${describeU64(input, 24)} is out of range 1..${bits} (the bit count)`);
  }
  const count = readU64(input, 32);
  if (count > bits) throw fail(`count ${describeU64(input, 32)} exceeds the bit count ${bits}`);
  const falsePositiveRate = input.readDoubleLE(40);
  if (!(
    falsePositiveRate >= MIN_BLOOM_FALSE_POSITIVE_RATE &&
    falsePositiveRate <= MAX_BLOOM_FALSE_POSITIVE_RATE
  )) {
    throw fail(
      `false-positive rate ${falsePositiveRate} is out of range ${MIN_BLOOM_FALSE_POSITIVE_RATE}..${MAX_BLOOM_FALSE_POSITIVE_RATE}`,
    );
  }
  const declared = bloomByteLength(bits);
  if (declared > maxBytes) {
    throw fail(`its header declares ${declared} bytes, more than the limit of ${maxBytes}`);
  }
  if (length !== declared) {
    throw fail(
      `${length} bytes, but its header declares ${declared} (${length < declared ? "truncated" : "trailing bytes"})`,
    );
  }
  const bodyEnd = HEADER_BYTES + bits / 8;
  const digest = createHash("sha256").update(input.subarray(0, bodyEnd)).digest();
  if (!timingSafeEqual(digest, input.subarray(bodyEnd))) {
    throw fail("checksum mismatch: the filter was corrupted or cut short in transfer");
  }
  const array = new Uint8Array(input.subarray(HEADER_BYTES, bodyEnd));
  const setBits = popcount(array);
  if (count > setBits) throw fail(`count ${count} exceeds the ${setBits} bits set`);
  return new Bloom({
    bits,
    hashes,
    capacity,
    falsePositiveRate,
    seed: input.subarray(48, 56),
    array,
    count,
    setBits,
    digest,
  });
}

// --- hashing -----------------------------------------------------------------

// 0 for a nix32 character, 1 for any other UTF-16 code unit: one in-bounds
// load per character, whatever the input.
const NOT_NIX32 = new Uint8Array(65536).fill(1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) NOT_NIX32[NIX32_ALPHABET.charCodeAt(i)] = 0;

// The result of the last successful `hashPair`, as int32: a typed array, not
// two `let`s, so that `has` allocates nothing (a uint32 above 2^31 in a
// variable would be boxed as a heap number on every call).
const pair = new Int32Array(2);

/**
 * Validates a hash part and, when valid, sets pair[0] and pair[1] to
 * MurmurHash3_x86_32 of its 32 ASCII bytes seeded by seeds[0] and seeds[1].
 * The block mixing does not depend on the seed, so both runs share it.
 */
function hashPair(text: string, seeds: Int32Array): boolean {
  if (text.length !== HASH_PART_CHARS) return false;
  let h1 = seeds[0] ?? 0;
  let h2 = seeds[1] ?? 0;
  let bad = 0;
  for (let i = 0; i < HASH_PART_CHARS; i += 4) {
    const c0 = text.charCodeAt(i);
    const c1 = text.charCodeAt(i + 1);
    const c2 = text.charCodeAt(i + 2);
    const c3 = text.charCodeAt(i + 3);
    bad |=
      (NOT_NIX32[c0] ?? 1) | (NOT_NIX32[c1] ?? 1) | (NOT_NIX32[c2] ?? 1) | (NOT_NIX32[c3] ?? 1);
    let k = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 ^= k;
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0;
  }
  if (bad !== 0) return false;
  pair[0] = fmix32(h1 ^ HASH_PART_CHARS);
  pair[1] = fmix32(h2 ^ HASH_PART_CHARS);
  return true;
}

/** MurmurHash3's finaliser (an int32 holding the unsigned result's bits). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

// --- the filter ----------------------------------------------------------------

interface BloomState {
  bits: number;
  hashes: number;
  capacity: number;
  falsePositiveRate: number;
  /** 8 bytes: two little-endian u32 seeds. */
  seed: Uint8Array;
  array: Uint8Array;
  count: number;
  setBits: number;
  digest: Buffer | undefined;
}

// A class (not closures) so that every filter shares one hidden class and
// `has` stays monomorphic on the hot path.
class Bloom implements BloomFilter {
  readonly bits: number;
  readonly hashes: number;
  readonly capacity: number;
  readonly falsePositiveRate: number;
  // The two seeds as int32 in a typed array: a uint32 above 2^31 in a field
  // would be a heap number, and change the field's representation under
  // optimised code.
  readonly seeds: Int32Array;
  readonly array: Uint8Array;
  private added: number;
  private ones: number;
  private digest: Buffer | undefined;

  constructor(state: BloomState) {
    this.bits = state.bits;
    this.hashes = state.hashes;
    this.capacity = state.capacity;
    this.falsePositiveRate = state.falsePositiveRate;
    const view = Buffer.from(state.seed.buffer, state.seed.byteOffset, state.seed.byteLength);
    this.seeds = Int32Array.of(view.readInt32LE(0), view.readInt32LE(4));
    this.array = state.array;
    this.added = state.count;
    this.ones = state.setBits;
    this.digest = state.digest;
  }

  get count(): number {
    return this.added;
  }

  get setBits(): number {
    return this.ones;
  }

  get overCapacity(): boolean {
    return this.added > this.capacity;
  }

  has(hashPart: string): boolean {
    if (!hashPair(hashPart, this.seeds)) return false;
    const m = this.bits;
    const k = this.hashes;
    const array = this.array;
    let x = ((pair[0] ?? 0) >>> 0) % m;
    let y = ((pair[1] ?? 0) >>> 0) % m;
    for (let i = 1; ; i++) {
      if (((array[x >>> 3] ?? 0) & (1 << (x & 7))) === 0) return false;
      if (i === k) return true;
      // x, y < m <= 2^30 and i < k <= 32 < m: one subtraction reduces each.
      x += y;
      if (x >= m) x -= m;
      y += i;
      if (y >= m) y -= m;
    }
  }

  add(hashPart: string): boolean {
    if (!hashPair(hashPart, this.seeds)) {
      throw new OgygiaError(
        "ERR_OGYGIA_IRISD_BLOOM",
        `cannot index '${escapeForTerminal(hashPart.slice(0, 64))}' in the bloom filter: not a store path hash part (32 nix32 characters)`,
      );
    }
    const m = this.bits;
    const k = this.hashes;
    const array = this.array;
    let x = ((pair[0] ?? 0) >>> 0) % m;
    let y = ((pair[1] ?? 0) >>> 0) % m;
    let fresh = 0;
    for (let i = 1; ; i++) {
      const byte = array[x >>> 3] ?? 0;
      const mask = 1 << (x & 7);
      if ((byte & mask) === 0) {
        array[x >>> 3] = byte | mask;
        fresh += 1;
      }
      if (i === k) break;
      x += y;
      if (x >= m) x -= m;
      y += i;
      if (y >= m) y -= m;
    }
    if (fresh === 0) return false;
    this.ones += fresh;
    this.added += 1;
    this.digest = undefined;
    return true;
  }

  estimatedFalsePositiveRate(): number {
    return Math.pow(this.ones / this.bits, this.hashes);
  }

  /** SHA-256 of the header and bit array, as at the end of the wire format. */
  checksum(): Buffer {
    if (this.digest === undefined) {
      const header = Buffer.alloc(HEADER_BYTES);
      writeHeader(this, header);
      this.digest = createHash("sha256").update(header).update(this.array).digest();
    }
    return this.digest;
  }
}

function asBloom(filter: BloomFilter): Bloom {
  if (!(filter instanceof Bloom)) {
    throw new TypeError("not a bloom filter made by createBloom, buildBloom or parseBloom");
  }
  return filter;
}

function writeHeader(bloom: Bloom, out: Buffer): void {
  MAGIC.copy(out, 0);
  out.writeUInt16LE(BLOOM_FORMAT_VERSION, 8);
  out.writeUInt8(BLOOM_HASH_SCHEME, 10);
  out.writeUInt8(bloom.hashes, 11);
  out.writeUInt32LE(0, 12);
  writeU64(out, bloom.bits, 16);
  writeU64(out, bloom.capacity, 24);
  writeU64(out, bloom.count, 32);
  out.writeDoubleLE(bloom.falsePositiveRate, 40);
  out.writeInt32LE(bloom.seeds[0] ?? 0, 48);
  out.writeInt32LE(bloom.seeds[1] ?? 0, 52);
}

// u64 fields hold values below 2^31 in version 1; a larger one reads as
// Infinity, which every range check refuses.
function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset + 4) === 0 ? buf.readUInt32LE(offset) : Infinity;
}

function describeU64(buf: Buffer, offset: number): string {
  return buf.readBigUInt64LE(offset).toString();
}

function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32LE(value >>> 0, offset);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), offset + 4);
}

function popcount(array: Uint8Array): number {
  // The array is a fresh copy, so it starts 8-byte aligned; its length is a
  // multiple of 8. Int32 words keep every value a small integer (uint32 words
  // above 2^31 would be doubles, several times slower here).
  let total = 0;
  for (const word of new Int32Array(array.buffer, array.byteOffset, array.byteLength / 4)) {
    let v = word - ((word >>> 1) & 0x55555555);
    v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
    total += Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
  }
  return total;
}
