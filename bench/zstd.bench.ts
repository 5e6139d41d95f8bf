/**
 * zstd for irisd's `[server] compression = "zstd"`: the two candidate
 * packages side by side on the same real NARs, in one run.
 *
 *  - `zstd-napi`: native binding (Node-API) over libzstd, streaming
 *    Transform streams; built from source on install here.
 *  - `@hpcc-js/wasm-zstd`: WebAssembly build of libzstd, no build step.
 *    Its streaming compressor (`compressChunk`) is used; its streaming
 *    decompressor (`decompressChunk`) drops output beyond the size the
 *    caller guesses (checked below, once), so decompression is measured
 *    with its whole-buffer `decompress`, the only correct way it offers,
 *    and on a frame from its whole-buffer `compress` (which records the
 *    content size): on a streamed frame it allocates 20 times the
 *    compressed size, which ran this 192 MB NAR out of memory.
 *
 * Per NAR and level (1, 3): compression and decompression MB/s (of NAR
 * bytes), the ratio, and the peak RSS of a child process compressing and
 * then decompressing the largest NAR. Rounds alternate napi, wasm, napi,
 * ...; the table gives napi/wasm speed as min/median/max of the per-round
 * ratios.
 *
 * NARs: the NAR serialisation (our writer) of real folders on this machine
 * (override with BENCH_ZSTD_DIRS=dir1:dir2). A package that is not installed
 * in node_modules can be loaded from BENCH_ZSTD_MODULES (a node_modules folder).
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { pathToFileURL } from "node:url";

import { narStream } from "../src/nix/index.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CHUNK = 1024 * 1024;
/** Larger NARs are not decompressed with the WASM build: it runs out of memory (192 MB did). */
const WASM_DECOMPRESS_MAX = 64 * 1024 * 1024;
const DEFAULT_DIRS = ["node_modules/typescript", "/usr/lib/jvm/default-java/lib"];

interface Codec {
  name: string;
  compress(chunks: readonly Buffer[], level: number): Promise<Buffer>;
  decompress(compressed: Buffer, size: number, original?: Buffer): Promise<Buffer>;
}

/** The WASM decompression's own time (its frame is made first, untimed). */
let wasmDecompressMs = NaN;

async function importPackage(name: string): Promise<unknown> {
  const extra = process.env.BENCH_ZSTD_MODULES;
  if (extra !== undefined) {
    const require = createRequire(path.join(path.resolve(extra), "x.js"));
    try {
      return await import(pathToFileURL(require.resolve(name)).href);
    } catch {
      // Fall back to the project's own node_modules.
    }
  }
  return import(name);
}

interface NapiModule {
  CompressStream: new (p: { compressionLevel: number }) => NodeJS.ReadWriteStream;
  DecompressStream: new () => NodeJS.ReadWriteStream;
}

interface WasmZstd {
  reset(): void;
  setCompressionLevel(level: number): void;
  compressChunk(data: Uint8Array): Uint8Array;
  compressEnd(): Uint8Array;
  compress(data: Uint8Array, level: number): Uint8Array;
  decompress(data: Uint8Array): Uint8Array;
  decompressChunk(data: Uint8Array, outputSize: number): Uint8Array;
}

/** Collects a stream's output. */
function collector(into: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      into.push(chunk);
      callback();
    },
  });
}

async function napiCodec(): Promise<Codec | undefined> {
  let mod: NapiModule;
  try {
    mod = (await importPackage("zstd-napi")) as NapiModule;
  } catch {
    return undefined;
  }
  return {
    name: "zstd-napi",
    async compress(chunks, level) {
      const out: Buffer[] = [];
      await pipeline(
        Readable.from(chunks),
        new mod.CompressStream({ compressionLevel: level }),
        collector(out),
      );
      return Buffer.concat(out);
    },
    async decompress(compressed) {
      const out: Buffer[] = [];
      const parts: Buffer[] = [];
      for (let i = 0; i < compressed.length; i += 65_536)
        parts.push(compressed.subarray(i, i + 65_536));
      await pipeline(Readable.from(parts), new mod.DecompressStream(), collector(out));
      return Buffer.concat(out);
    },
  };
}

async function wasmCodec(): Promise<Codec | undefined> {
  let zstd: WasmZstd;
  try {
    const mod = (await importPackage("@hpcc-js/wasm-zstd")) as {
      Zstd: { load(): Promise<WasmZstd> };
    };
    zstd = await mod.Zstd.load();
  } catch {
    return undefined;
  }
  return {
    name: "@hpcc-js/wasm-zstd",
    compress(chunks, level) {
      zstd.reset();
      zstd.setCompressionLevel(level);
      const out: Uint8Array[] = chunks.map((c) => zstd.compressChunk(c));
      out.push(zstd.compressEnd());
      return Promise.resolve(Buffer.concat(out));
    },
    decompress(_compressed, size, original?: Buffer) {
      // See the module comment: a streamed frame has no content size.
      const frame = zstd.compress(original ?? Buffer.alloc(size), 1);
      zstd.reset();
      const started = performance.now();
      const out = Buffer.from(zstd.decompress(frame));
      wasmDecompressMs = performance.now() - started;
      return Promise.resolve(out);
    },
  };
}

/** The WASM streaming decompressor on a compressible NAR: does every byte come out? */
async function wasmStreamingLoses(nar: Buffer): Promise<string> {
  const mod = (await importPackage("@hpcc-js/wasm-zstd")) as {
    Zstd: { load(): Promise<WasmZstd> };
  };
  const zstd = await mod.Zstd.load();
  zstd.reset();
  zstd.setCompressionLevel(1);
  const compressed = Buffer.concat([zstd.compressChunk(nar), zstd.compressEnd()]);
  zstd.reset();
  let out = 0;
  for (let i = 0; i < compressed.length; i += 65_536) {
    out += zstd.decompressChunk(compressed.subarray(i, i + 65_536), 4 * 65_536).length;
  }
  return `decompressChunk (64 KiB in, 256 KiB out per call) gave ${out} of ${nar.length} bytes`;
}

async function narOf(dir: string): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of narStream(dir, { chunkSize: CHUNK })) chunks.push(Buffer.from(chunk));
  return chunks;
}

function stats(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q))] ?? NaN;
  return `${at(0).toFixed(2)}/${at((sorted.length - 1) / 2).toFixed(2)}/${at(sorted.length - 1).toFixed(2)}`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

/** Peak RSS (MB) of a child that compresses (level 3) and decompresses `dir`'s NAR with `lib`. */
function peakRss(lib: "napi" | "wasm", dir: string): string {
  const result = spawnSync(process.execPath, [process.argv[1] ?? "", "--memory", lib, dir], {
    encoding: "utf8",
    env: process.env,
  });
  if (result.status !== 0) {
    const lines = result.stderr
      .split("\n")
      .filter((l) => l.trim() !== "" && !/^\s*\d+: 0x/.test(l));
    return `failed (exit ${result.status ?? result.signal ?? "?"}): ${lines.slice(0, 2).join(" / ")} ... ${lines.pop() ?? ""}`;
  }
  return result.stdout.trim();
}

/**
 * Each library used as irisd would: the NAR streamed from the writer into
 * the compressor (only the compressed bytes kept), then decompressed into a
 * counting sink. The WASM build can only decompress a whole buffer.
 */
async function memoryChild(lib: string, dir: string): Promise<void> {
  const base = process.resourceUsage().maxRSS / 1024;
  const report = (what: string): string =>
    `+${(process.resourceUsage().maxRSS / 1024 - base).toFixed(0)} MB ${what}`;
  const steps: string[] = [];
  const compressed: Buffer[] = [];
  let size = 0;
  let out = 0;
  const nar = async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of narStream(dir, { chunkSize: CHUNK })) {
      size += chunk.length;
      yield chunk;
    }
  };
  if (lib === "napi") {
    const mod = (await importPackage("zstd-napi")) as NapiModule;
    await pipeline(
      Readable.from(nar()),
      new mod.CompressStream({ compressionLevel: 3 }),
      collector(compressed),
    );
    steps.push(report("compressing (streamed)"));
    await pipeline(
      Readable.from(compressed),
      new mod.DecompressStream(),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          out += chunk.length;
          callback();
        },
      }),
    );
    steps.push(report("decompressing (streamed)"));
  } else {
    const mod = (await importPackage("@hpcc-js/wasm-zstd")) as {
      Zstd: { load(): Promise<WasmZstd> };
    };
    const zstd = await mod.Zstd.load();
    zstd.reset();
    zstd.setCompressionLevel(3);
    for await (const chunk of nar()) compressed.push(Buffer.from(zstd.compressChunk(chunk)));
    compressed.push(Buffer.from(zstd.compressEnd()));
    steps.push(report("compressing (streamed)"));
    zstd.reset();
    out = zstd.decompress(Buffer.concat(compressed)).length;
    steps.push(report("decompressing (whole buffers)"));
  }
  if (out !== size) throw new Error(`round trip gave ${out} of ${size} bytes`);
  console.log(
    `NAR ${(size / 1e6).toFixed(0)} MB: peak RSS ${base.toFixed(0)} MB at start, ${steps.join(", ")}`,
  );
}

async function main(): Promise<void> {
  if (process.argv[2] === "--memory") {
    await memoryChild(process.argv[3] ?? "", process.argv[4] ?? "");
    return;
  }
  const napi = await napiCodec();
  const wasm = await wasmCodec();
  if (napi === undefined || wasm === undefined) {
    console.log(
      `needs both packages: zstd-napi ${napi ? "found" : "missing"}, @hpcc-js/wasm-zstd ${wasm ? "found" : "missing"}` +
        " (set BENCH_ZSTD_MODULES to a node_modules folder holding the missing one)",
    );
    return;
  }
  const dirs = (process.env.BENCH_ZSTD_DIRS?.split(":") ?? DEFAULT_DIRS).filter((d) =>
    existsSync(d),
  );
  for (const dir of dirs) {
    const chunks = await narOf(dir);
    const size = chunks.reduce((n, c) => n + c.length, 0);
    const nar = Buffer.concat(chunks);
    console.log(`\nNAR of ${dir}: ${(size / 1e6).toFixed(1)} MB`);
    if (process.env.BENCH_ZSTD_CHECK === "1") {
      console.log(`  wasm streaming check: ${await wasmStreamingLoses(nar)}`);
    }
    for (const level of [1, 3]) {
      const results = new Map<string, { c: number[]; d: number[]; ratio: number }>();
      for (const codec of [napi, wasm]) results.set(codec.name, { c: [], d: [], ratio: 0 });
      for (let round = 0; round < ROUNDS; round++) {
        for (const codec of [napi, wasm]) {
          const entry = results.get(codec.name);
          if (entry === undefined) continue;
          const c = await timed(() => codec.compress(chunks, level));
          entry.c.push(c.ms);
          entry.ratio = size / c.value.length;
          if (codec === wasm && size > WASM_DECOMPRESS_MAX) {
            // Whole-buffer decompression of it aborts the process (see the memory line).
            entry.d.push(NaN);
            continue;
          }
          const d = await timed(() => codec.decompress(c.value, size, nar));
          if (!d.value.equals(nar)) throw new Error(`${codec.name}: round trip differs`);
          entry.d.push(codec === wasm ? wasmDecompressMs : d.ms);
        }
      }
      const a = results.get(napi.name);
      const b = results.get(wasm.name);
      if (a === undefined || b === undefined) continue;
      const mbps = (ms: number): string => `${((size / 1e6) * (1000 / ms)).toFixed(0)} MB/s`;
      for (const [name, r] of results) {
        console.log(
          `  level ${level} ${name.padEnd(20)} ratio ${r.ratio.toFixed(2)}  ` +
            `compress ${mbps(median(r.c))}  decompress ${mbps(median(r.d))}`,
        );
      }
      const cRatio = a.c.map((ms, i) => (b.c[i] ?? NaN) / ms);
      const dRatio = a.d.map((ms, i) => (b.d[i] ?? NaN) / ms);
      console.log(
        `  level ${level} napi speed / wasm speed (min/median/max over ${ROUNDS} rounds): ` +
          `compress ${stats(cRatio)}  decompress ${stats(dRatio)}`,
      );
    }
  }
  const largest = process.env.BENCH_ZSTD_MEMORY_DIR ?? dirs[dirs.length - 1];
  if (largest !== undefined) {
    console.log(`\npeak memory, level 3, NAR of ${largest} (one child process each):`);
    console.log(`  zstd-napi:          ${peakRss("napi", largest)}`);
    console.log(`  @hpcc-js/wasm-zstd: ${peakRss("wasm", largest)}`);
  }
}

await main();
