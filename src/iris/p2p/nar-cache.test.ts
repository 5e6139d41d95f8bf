import { rmSync } from "node:fs";
import { readdir, rename, stat, truncate, utimes, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import type { NarCache, NarCacheOptions } from "./nar-cache.js";
import {
  narOfFile,
  openTestCache,
  putCacheEntry,
  signedInfo,
  testKey,
} from "../../../test/support/p2p.js";
import { tempDirSync } from "../../../test/support/temp.js";

const { secret, trusted } = testKey("cache-test-1");

let dir: string;
let clock: number;

beforeEach(() => {
  dir = tempDirSync("nar-cache");
  clock = 1_000_000_000_000;
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function open(options: Partial<NarCacheOptions> = {}): Promise<NarCache> {
  return openTestCache(dir, trusted, { maxBytes: 10_000, now: () => clock, ...options });
}

/** Stores a verified NAR of `size` content bytes; returns its hash part. */
async function put(cache: NarCache, size: number, fill = "x"): Promise<string> {
  const nar = narOfFile(Buffer.alloc(size, fill));
  return (await putCacheEntry(cache, nar, signedInfo(nar, secret))).hashPart;
}

async function folderBytes(): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(path.join(dir, name))).size;
  return total;
}

describe("the NAR cache", () => {
  it("keeps the folder under max_size_bytes, evicting the least recently served first", async () => {
    const cache = await open({ maxBytes: 3000 });
    const a = await put(cache, 500, "a");
    clock += 1000;
    const b = await put(cache, 500, "b");
    clock += 1000;
    const entryA = cache.get(a);
    if (entryA === undefined) throw new Error("a not cached");
    cache.touch(entryA); // a is now more recent than b
    clock += 1000;
    const c = await put(cache, 500, "c");
    expect(cache.totalBytes).toBeLessThanOrEqual(3000);
    expect(await folderBytes()).toBe(cache.totalBytes);
    expect(cache.get(b)).toBeUndefined();
    expect(cache.get(a)).toBeDefined();
    expect(cache.get(c)).toBeDefined();
    cache.close();
  });

  it("does not keep an entry larger than the limit, and removes its temporary file", async () => {
    const cache = await open({ maxBytes: 1000 });
    const big = await put(cache, 2000);
    expect(cache.get(big)).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
    cache.close();
  });

  it("evicts entries idle for longer than the time to idle", async () => {
    const cache = await open({ timeToIdleMs: 10_000 });
    const old = await put(cache, 100, "o");
    clock += 8000;
    const fresh = await put(cache, 100, "f");
    clock += 5000;
    await cache.sweep();
    expect(cache.get(old)).toBeUndefined();
    expect(cache.get(fresh)).toBeDefined();
    expect((await readdir(dir)).filter((n) => n.startsWith(old))).toEqual([]);
    cache.close();
  });

  it("tells listeners what was added and removed", async () => {
    const cache = await open({ maxBytes: 1500 });
    const events: string[] = [];
    cache.onChange((e) => events.push(`${e.type}:${e.hashPart}`));
    const a = await put(cache, 500, "a");
    clock += 1;
    const b = await put(cache, 500, "b");
    expect(events).toEqual([`added:${a}`, `removed:${a}`, `added:${b}`]);
    cache.close();
  });

  it("recovers its entries at start, and removes leftovers and broken or untrusted entries", async () => {
    const first = await open();
    const kept = await put(first, 100, "k");
    const shortened = await put(first, 100, "s");
    const garbled = await put(first, 100, "g");
    const renamed = await put(first, 100, "r");
    first.close();
    const names = await readdir(dir);
    const fileOf = (hashPart: string): string =>
      path.join(dir, names.find((n) => n.startsWith(hashPart)) ?? "");
    await truncate(fileOf(shortened), 200);
    await writeFile(fileOf(garbled), "not an entry at all");
    // An entry under another NAR hash than its narinfo's.
    await rename(fileOf(renamed), path.join(dir, `${renamed}-${"0".repeat(52)}.entry`));
    await writeFile(path.join(dir, ".tmp-0123"), "half a download");
    await writeFile(path.join(dir, "README"), "not ours");
    const keptAccess = clock / 1000 - 30;
    await utimes(fileOf(kept), keptAccess, keptAccess);

    const again = await open();
    expect(again.entryCount).toBe(1);
    expect(again.get(kept)?.lastAccess).toBeCloseTo(keptAccess * 1000, -2);
    expect((await readdir(dir)).sort()).toEqual(["README", path.basename(fileOf(kept))].sort());
    again.close();

    // The key is no longer trusted: the entry goes too.
    const other = await open({ trusted: testKey("someone-else").trusted });
    expect(other.entryCount).toBe(0);
    expect(await readdir(dir)).toEqual(["README"]);
    other.close();
  });

  it("enforces a smaller limit at start", async () => {
    const first = await open({ maxBytes: 10_000 });
    for (let i = 0; i < 5; i++) {
      await put(first, 500, String(i));
      clock += 1000;
    }
    first.close();
    const smaller = await open({ maxBytes: 1500 });
    expect(smaller.totalBytes).toBeLessThanOrEqual(1500);
    expect(await folderBytes()).toBe(smaller.totalBytes);
    smaller.close();
  });

  it("fails with ERR_OGYGIA_IRISD_CACHE when the folder cannot be used", async () => {
    const file = path.join(dir, "a-file");
    await writeFile(file, "");
    await expect(open({ dir: path.join(file, "cache") })).rejects.toMatchObject({
      code: "ERR_OGYGIA_IRISD_CACHE",
    });
  });
});
