/**
 * C's NAR cache against a real peer B serving content-addressed paths
 * (trusted for their content address alone, no key needed): the size limit
 * holds however many NARs go through, least recently served first out; a
 * NAR larger than the limit is streamed but not kept; a restart recovers
 * the entries and removes leftovers and broken entries; idle entries go
 * after `time_to_idle_secs`.
 */

import { createHash } from "node:crypto";
import { readdir, stat, truncate, utimes, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  httpRequest,
  makeLargeTree,
  startIrisd,
  stopAllIrisd,
  type IrisdProcess,
} from "./helpers/irisd.js";
import {
  makeChrootStore,
  nixDump,
  runNix,
  uniqueSalt,
  type ChrootStore,
  hashPartOf,
} from "./helpers/nix.js";
import { freePort, removeDir, tempDir, waitFor } from "./helpers/process.js";

/** About three of the small NARs (~205 KB each with their headers and narinfos). */
const LIMIT = 700_000;

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

let dir: string;
let storeB: ChrootStore;
let small: string[];
let large: string;
let nodeB: IrisdProcess;
let portB: number;
let cacheDir: string;
const dumps = new Map<string, string>();

function startC(
  storeRoot: string,
  cache: { maxSizeBytes?: number; timeToIdleSecs?: number } = {},
): Promise<IrisdProcess> {
  return startIrisd({
    storeRoot,
    peers: [`http://127.0.0.1:${portB}`],
    trustedKeys: [],
    cache: { dir: cacheDir, maxSizeBytes: LIMIT, ...cache },
  });
}

/** Fetches a path's narinfo and NAR through `node`; checks the bytes against nix-store --dump. */
async function fetchThrough(node: IrisdProcess, storePath: string): Promise<void> {
  const info = await httpRequest(`${node.url}/${hashPartOf(storePath)}.narinfo`);
  expect(info.status).toBe(200);
  const url = /^URL: (.*)$/m.exec(info.body.toString("utf8"))?.[1] ?? "";
  const nar = await httpRequest(`${node.url}/${url}`);
  expect(nar.status).toBe(200);
  expect(sha256(nar.body)).toBe(dumps.get(storePath));
}

async function cacheFiles(): Promise<{ names: string[]; bytes: number }> {
  const names = await readdir(cacheDir);
  let bytes = 0;
  for (const name of names) bytes += (await stat(path.join(cacheDir, name))).size;
  return { names, bytes };
}

/** Waits until `node` has no download in progress (each ends once its NAR is cached, or not). */
async function settled(node: IrisdProcess): Promise<{ names: string[]; bytes: number }> {
  return waitFor("the cache to settle", async () => {
    const metrics = (await httpRequest(`${node.url}/metrics`)).body.toString("utf8");
    if (!/^irisd_peer_nar_downloads_in_progress 0$/m.test(metrics)) return undefined;
    const files = await cacheFiles();
    return files.names.some((n) => n.startsWith(".tmp-")) ? undefined : files;
  });
}

function cached(names: readonly string[], storePath: string): boolean {
  return names.some((n) => n.startsWith(`${hashPartOf(storePath)}-`) && n.endsWith(".entry"));
}

async function addTree(
  root: string,
  name: string,
  files: number,
  fileBytes: number,
): Promise<string> {
  const tree = path.join(dir, name);
  await makeLargeTree(tree, { files, fileBytes, seed: uniqueSalt(name) });
  return (await runNix("nix-store", ["--store", root, "--add", tree])).stdout
    .toString("utf8")
    .trim();
}

beforeAll(async () => {
  dir = await tempDir("iris-p2p-cache");
  const rootB = path.join(dir, "b");
  small = [];
  for (let i = 0; i < 6; i++) small.push(await addTree(rootB, `small-${i}`, 2, 100_000));
  large = await addTree(rootB, "large", 8, 100_000);
  storeB = await makeChrootStore([], { root: rootB });
  for (const p of [...small, large]) dumps.set(p, sha256(await nixDump(path.join(rootB, p))));
  portB = await freePort();
  nodeB = await startIrisd({ storeRoot: storeB.root, listen: [`127.0.0.1:${portB}`] });
  cacheDir = path.join(dir, "cache-c");
}, 180_000);

afterAll(async () => {
  await stopAllIrisd();
  await removeDir(dir);
});

describe("the NAR cache", () => {
  it("stays within max_size_bytes however many NARs go through, least recently served out first", async () => {
    const rootC = path.join(dir, "c1");
    await addTree(rootC, "marker-c", 1, 10);
    const nodeC = await startC(rootC);
    for (const [i, p] of small.entries()) {
      await fetchThrough(nodeC, p);
      const { names, bytes } = await settled(nodeC);
      expect(bytes).toBeLessThanOrEqual(LIMIT);
      expect(cached(names, p)).toBe(true);
      if (i >= 3) expect(cached(names, small[i - 3] ?? "")).toBe(false);
    }
    // Served from the cache (B is not asked): touching small[3] makes small[4] the oldest.
    await fetchThrough(nodeC, small[3] ?? "");
    await fetchThrough(nodeC, small[0] ?? "");
    const { names, bytes } = await settled(nodeC);
    expect(bytes).toBeLessThanOrEqual(LIMIT);
    expect(cached(names, small[3] ?? "")).toBe(true);
    expect(cached(names, small[4] ?? "")).toBe(false);
    const metrics = (await httpRequest(`${nodeC.url}/metrics`)).body.toString("utf8");
    expect(metrics).toMatch(/^irisd_nar_cache_evictions_total\{reason="size"\} [1-9]/m);
    expect(metrics).toMatch(/^irisd_nar_cache_hits_total [1-9]/m);
    await nodeC.stop();
  });

  it("streams a NAR larger than the limit without keeping it", async () => {
    const nodeC = await startC(path.join(dir, "c1"));
    await fetchThrough(nodeC, large);
    const { names, bytes } = await settled(nodeC);
    expect(cached(names, large)).toBe(false);
    expect(bytes).toBeLessThanOrEqual(LIMIT);
    await nodeC.stop();
  });

  it("recovers its entries after a restart, removing leftovers and broken entries", async () => {
    // The previous test stopped C, which waits for its cache writes.
    const before = await cacheFiles();
    const entries = before.names.filter((n) => n.endsWith(".entry")).sort();
    expect(entries.length).toBeGreaterThanOrEqual(2);
    const [broken, ...kept] = entries;
    if (broken === undefined) throw new Error("no entry");
    // A download cut by a crash, an entry that is not one, and an entry cut short.
    await writeFile(path.join(cacheDir, ".tmp-leftover"), "partial");
    const orphan = `${broken.slice(0, 33)}${"1".repeat(52)}.entry`;
    await writeFile(path.join(cacheDir, orphan), "orphan");
    await truncate(path.join(cacheDir, broken), 1000);
    await writeFile(path.join(cacheDir, "not-ours.txt"), "left alone");

    await nodeB.stop();
    const nodeC = await startC(path.join(dir, "c1"));
    const { names } = await cacheFiles();
    expect(names).not.toContain(".tmp-leftover");
    expect(names).not.toContain(orphan);
    expect(names).not.toContain(broken);
    expect(names).toContain("not-ours.txt");
    const ready = nodeC.logs().find((l) => l.msg === "NAR cache ready");
    expect(ready).toMatchObject({ entries: kept.length, removed: 3 });
    // With B down, C serves what it kept, and nothing else.
    for (const name of kept) {
      const p = small.find((s) => name.startsWith(hashPartOf(s)));
      if (p === undefined) throw new Error(`unknown entry ${name}`);
      await fetchThrough(nodeC, p);
    }
    const brokenPath = small.find((s) => broken.startsWith(hashPartOf(s))) ?? "";
    expect((await httpRequest(`${nodeC.url}/${hashPartOf(brokenPath)}.narinfo`)).status).toBe(404);
    await nodeC.stop();
    nodeB = await startIrisd({ storeRoot: storeB.root, listen: [`127.0.0.1:${portB}`] });
  });

  it("evicts entries not served for time_to_idle_secs", async () => {
    // Last use is kept in the NAR's mtime: entries last served an hour ago are gone at start.
    const hourAgo = Date.now() / 1000 - 3600;
    for (const name of (await cacheFiles()).names.filter((n) => n.endsWith(".entry"))) {
      await utimes(path.join(cacheDir, name), hourAgo, hourAgo);
    }
    const nodeC = await startC(path.join(dir, "c1"), { timeToIdleSecs: 2 });
    expect((await cacheFiles()).names.filter((n) => n.endsWith(".entry"))).toEqual([]);
    await fetchThrough(nodeC, small[5] ?? "");
    expect(cached((await settled(nodeC)).names, small[5] ?? "")).toBe(true);
    await waitFor(
      "the idle entry to be evicted",
      async () => ((await cacheFiles()).names.length === 1 ? true : undefined),
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect((await cacheFiles()).names).toEqual(["not-ours.txt"]);
    await nodeC.stop();
  });
});
