/**
 * The bloom filter irisd advertises to its peers (`src/iris/p2p/bloom.ts`).
 *
 * 1. Size: bits per path against the optimum -ln p / (ln 2)^2, at capacity and
 *    at the path count it was built for (capacity carries 25 % headroom).
 * 2. Build time for 100,000 and 1,000,000 paths, beside building a JS `Set`
 *    of the same strings and beside merely decoding them (`decodeNix32`).
 * 3. The false-positive rate over a million random queries that are not in
 *    the filter, beside the design rate and the textbook rate for its m, k, n.
 * 4. `has` throughput (hits and misses) beside `Set.has` on the same strings,
 *    and the cost of the wire format (serialise, parse).
 *
 * Hash parts are 20 random bytes each, nix32-encoded, as Nix's are; the
 * queries are flat strings, like those the router slices from a URL.
 * Times are CPU time of this process (user + system), medians of ROUNDS
 * rounds after one warm-up: on a shared machine, wall time mostly measures
 * the neighbours. BENCH_BLOOM_RATE sets the rate.
 */

import { createHash, randomBytes } from "node:crypto";
import os from "node:os";

import {
  DEFAULT_BLOOM_FALSE_POSITIVE_RATE,
  bloomParameters,
  buildBloom,
  expectedFalsePositiveRate,
  parseBloom,
  serializeBloom,
  type BloomFilter,
} from "../src/iris/p2p/index.js";
import { NIX32_ALPHABET, decodeNix32, encodeNix32 } from "../src/nix/index.js";
import { formatMs, median, printTable } from "./lib-timing.js";

const RATE = Number(process.env.BENCH_BLOOM_RATE ?? DEFAULT_BLOOM_FALSE_POSITIVE_RATE);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SIZES = [100_000, 1_000_000];
const QUERIES = 1_000_000;
const HOT_REPEATS = 1000;

/** `count` nix32 hash parts of 20 random bytes (the same text encodeNix32 would give). */
function hashParts(count: number): string[] {
  const bytes = randomBytes(count * 20);
  const out: string[] = [];
  const chars = Buffer.alloc(32);
  for (let n = 0; n < count; n++) {
    // nix32 of 20 bytes: 160 bits in 5-bit groups, last group first.
    const base = n * 20;
    for (let c = 0; c < 32; c++) {
      const bit = (31 - c) * 5;
      const i = base + (bit >>> 3);
      const j = bit & 7;
      const low = (bytes[i] ?? 0) >>> j;
      const high = (bit >>> 3) + 1 < 20 ? (bytes[i + 1] ?? 0) << (8 - j) : 0;
      chars[c] = NIX32_ALPHABET.charCodeAt((low | high) & 0x1f);
    }
    out.push(chars.toString("latin1"));
  }
  // The fast encoder above must agree with the real one.
  if (out[0] !== encodeNix32(bytes.subarray(0, 20))) throw new Error("hash part encoding differs");
  return out;
}

/** Median CPU milliseconds of `fn` over ROUNDS rounds after one warm-up, and its last result. */
function timed<T>(fn: (round: number) => T): { ms: number; result: T } {
  let result = fn(-1);
  const runs: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const started = process.cpuUsage();
    result = fn(r);
    const used = process.cpuUsage(started);
    runs.push((used.user + used.system) / 1000);
  }
  return { ms: median(runs), result };
}

function perQuery(count: number, ms: number): string {
  return `${((count * 1000) / ms / 1e6).toFixed(1)} M/s (${((ms * 1e6) / count).toFixed(0)} ns)`;
}

function ratio(ours: number, base: number): string {
  return `${(ours / base).toFixed(2)}x`;
}

// One loop per kind of set, each with a single call target: a shared loop
// taking a callback would measure a megamorphic call as much as the lookup.
function bloomHits(filter: BloomFilter, queries: readonly string[], repeats = 1): number {
  let hits = 0;
  for (let r = 0; r < repeats; r++) for (const q of queries) if (filter.has(q)) hits += 1;
  return hits;
}

function setHits(set: ReadonlySet<string>, queries: readonly string[], repeats = 1): number {
  let hits = 0;
  for (let r = 0; r < repeats; r++) for (const q of queries) if (set.has(q)) hits += 1;
  return hits;
}

function main(): void {
  const optimum = -Math.log(RATE) / Math.LN2 ** 2;
  console.log(
    `design false-positive rate ${RATE}; optimum ${optimum.toFixed(3)} bits per path; ${ROUNDS} rounds, CPU-time medians; load average ${os.loadavg()[0]?.toFixed(1) ?? "?"} on ${os.availableParallelism()} CPUs`,
  );

  const members = new Map<number, string[]>();
  for (const n of SIZES) members.set(n, hashParts(n));
  const strangers = hashParts(QUERIES);
  const filters = new Map<number, BloomFilter>();

  console.log("\n1. Size (capacity = paths x 1.25, at least 1,024)");
  const sizeRows: string[][] = [
    ["paths", "m (bits)", "k", "bits/path at capacity", "bits/path now", "optimum", "serialised"],
  ];
  for (const n of SIZES) {
    const p = bloomParameters({ paths: n, falsePositiveRate: RATE });
    sizeRows.push([
      n.toLocaleString("en-US"),
      p.bits.toLocaleString("en-US"),
      String(p.hashes),
      `${(p.bits / p.capacity).toFixed(3)} (${ratio(p.bits / p.capacity, optimum)})`,
      `${(p.bits / n).toFixed(3)} (${ratio(p.bits / n, optimum)})`,
      optimum.toFixed(3),
      `${((p.bits / 8 + 88) / 1024).toFixed(0)} KiB`,
    ]);
  }
  printTable(sizeRows);

  console.log("\n2. Build time");
  const buildRows: string[][] = [
    ["paths", "buildBloom", "per path", "new Set(strings)", "decodeNix32 each", "vs Set"],
  ];
  for (const n of SIZES) {
    const parts = members.get(n) ?? [];
    const build = timed(() => buildBloom(parts, { falsePositiveRate: RATE }));
    filters.set(n, build.result);
    const set = timed(() => new Set(parts));
    const decode = timed(() => {
      let x = 0;
      for (const part of parts) x ^= decodeNix32(part, 20)[0] ?? 0;
      return x;
    });
    buildRows.push([
      n.toLocaleString("en-US"),
      formatMs(build.ms),
      `${((build.ms * 1e6) / n).toFixed(0)} ns`,
      formatMs(set.ms),
      formatMs(decode.ms),
      ratio(build.ms, set.ms),
    ]);
  }
  printTable(buildRows);

  console.log(`\n3. False positives over ${QUERIES.toLocaleString("en-US")} random non-members`);
  const fpRows: string[][] = [
    ["filter", "measured", "design", "textbook for m, k, n", "estimated from fill"],
  ];
  const largest = SIZES[SIZES.length - 1] ?? 0;
  const atCapacity = buildBloom(members.get(largest) ?? [], { falsePositiveRate: RATE, growth: 0 });
  for (const [label, filter, n] of [
    [`${largest.toLocaleString("en-US")} paths, default headroom`, filters.get(largest), largest],
    [`${largest.toLocaleString("en-US")} paths, at capacity (growth 0)`, atCapacity, largest],
  ] as const) {
    if (filter === undefined) continue;
    const measured = bloomHits(filter, strangers) / QUERIES;
    fpRows.push([
      label,
      `${(measured * 100).toFixed(3)} %`,
      `${(RATE * 100).toFixed(3)} %`,
      `${(expectedFalsePositiveRate(filter.bits, filter.hashes, n) * 100).toFixed(3)} %`,
      `${(filter.estimatedFalsePositiveRate() * 100).toFixed(3)} %`,
    ]);
  }
  printTable(fpRows);

  console.log(
    `\n4. Queries on the ${largest.toLocaleString("en-US")}-path filter (${QUERIES.toLocaleString("en-US")} distinct strings per run), and the wire format`,
  );
  const filter = filters.get(largest);
  const parts = members.get(largest) ?? [];
  if (filter === undefined) throw new Error("no filter was built");
  const set = new Set(parts);
  const hits = parts.slice(0, QUERIES);
  const bloomHit = timed(() => bloomHits(filter, hits));
  const setHit = timed(() => setHits(set, hits));
  const bloomMiss = timed(() => bloomHits(filter, strangers));
  const setMiss = timed(() => setHits(set, strangers));
  // The cost of the query itself: a few strings asked again and again, so
  // that neither the strings nor (for the most part) the bits leave the cache.
  const hot = [...hits.slice(0, 500), ...strangers.slice(0, 500)];
  const bloomHot = timed(() => bloomHits(filter, hot, HOT_REPEATS));
  const setHot = timed(() => setHits(set, hot, HOT_REPEATS));
  if (bloomHit.result !== hits.length) throw new Error("a false negative");
  const bytes = serializeBloom(filter);
  // A change before each run, so the checksum is computed, not served from the cache.
  const copy = parseBloom(bytes, { maxBytes: bytes.length });
  const serialise = timed((round) => {
    copy.add(strangers[round + 1] ?? "");
    return serializeBloom(copy);
  });
  const parse = timed(() => parseBloom(bytes, { maxBytes: bytes.length }));
  const digest = timed(() => createHash("sha256").update(bytes).digest());
  printTable([
    ["operation", "ours", "baseline", "time vs baseline"],
    [
      "has, members",
      perQuery(hits.length, bloomHit.ms),
      `${perQuery(hits.length, setHit.ms)} (Set.has)`,
      ratio(bloomHit.ms, setHit.ms),
    ],
    [
      "has, non-members",
      perQuery(QUERIES, bloomMiss.ms),
      `${perQuery(QUERIES, setMiss.ms)} (Set.has)`,
      ratio(bloomMiss.ms, setMiss.ms),
    ],
    [
      "has, 1,000 strings repeated (cache-hot)",
      perQuery(hot.length * HOT_REPEATS, bloomHot.ms),
      `${perQuery(hot.length * HOT_REPEATS, setHot.ms)} (Set.has)`,
      ratio(bloomHot.ms, setHot.ms),
    ],
    [
      `serialise (${(bytes.length / 1024).toFixed(0)} KiB)`,
      formatMs(serialise.ms),
      `${formatMs(digest.ms)} (SHA-256 of it)`,
      ratio(serialise.ms, digest.ms),
    ],
    [
      "parse (checks, checksum, copy, popcount)",
      formatMs(parse.ms),
      `${formatMs(digest.ms)} (SHA-256 of it)`,
      ratio(parse.ms, digest.ms),
    ],
  ]);
  console.log(
    "Below 1x is faster than the baseline. Set.has reuses the hash V8 caches in each string after its first lookup; a string fresh from a request has none.",
  );
}

main();
