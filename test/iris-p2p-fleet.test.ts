/**
 * Three ogygia-irisd nodes on loopback, each over its own chroot store: a
 * closure only on B, one more path only on A, and C with A and B as peers.
 * A real Nix client copies everything through C; a second copy comes from
 * C's NAR cache with B stopped; a path added to B's store later (copied
 * unsigned, then signed with `nix store sign`) is found through C within
 * seconds, without a restart and without `POST /rescan`.
 */

import { readdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { httpRequest, startIrisd, stopAllIrisd, type IrisdProcess } from "./helpers/irisd.js";
import {
  hashPartOf,
  addToStore,
  buildClosure,
  makeChrootStore,
  nixVerify,
  nixCopy,
  pathInfoJson,
  runNix,
  signPaths,
  signedClosureStore,
  uniqueSalt,
  type ChrootStore,
  type TestClosure,
  type TestKeys,
} from "./helpers/nix.js";
import { freePort, removeDir, tempDir, waitFor } from "./helpers/process.js";

let dir: string;
let keys: TestKeys;
let closure: TestClosure;
let onlyOnA: string;
let storeA: ChrootStore;
let storeB: ChrootStore;
let storeC: ChrootStore;
let nodeA: IrisdProcess;
let nodeB: IrisdProcess;
let nodeC: IrisdProcess;
let portB: number;
let cacheDir: string;

async function startB(): Promise<IrisdProcess> {
  return startIrisd({ storeRoot: storeB.root, listen: [`127.0.0.1:${portB}`] });
}

/** NAR hashes of what arrived, and signatures by the test key. */
async function verify(store: string, paths: readonly string[]): Promise<void> {
  await nixVerify({ store, paths, trustedPublicKeys: [keys.publicKey] });
}

beforeAll(async () => {
  dir = await tempDir("iris-p2p-fleet");
  const other = await buildClosure(dir, uniqueSalt("p2p-a"));
  ({ closure, keys, store: storeB } = await signedClosureStore(dir, "p2p-fleet"));
  onlyOnA = other.leaf;
  storeA = await makeChrootStore([onlyOnA], { root: path.join(dir, "a") });
  await signPaths(keys, [onlyOnA], { store: storeA.root });
  const marker = path.join(dir, "marker-c");
  await writeFile(marker, uniqueSalt("marker-c"));
  storeC = await makeChrootStore([await addToStore(marker)], { root: path.join(dir, "c") });
  portB = await freePort();
  cacheDir = path.join(dir, "cache-c");
  [nodeA, nodeB] = await Promise.all([startIrisd({ storeRoot: storeA.root }), startB()]);
  nodeC = await startIrisd({
    storeRoot: storeC.root,
    peers: [nodeA.url, nodeB.url],
    trustedKeys: [keys.publicKey],
    cache: { dir: cacheDir },
    bloom: { peerTtlSecs: 60 },
  });
}, 180_000);

afterAll(async () => {
  await stopAllIrisd();
  await removeDir(dir);
});

describe("three irisd nodes", () => {
  it("a real nix copy through C fetches B's closure and A's path, and nix store verify passes", async () => {
    const client = path.join(dir, "client-1");
    const wanted = [closure.top, onlyOnA];
    await nixCopy({
      from: nodeC.url,
      to: client,
      paths: wanted,
      trustedPublicKeys: [keys.publicKey],
      cacheDir: path.join(dir, "xdg-1"),
    });
    const copied = await pathInfoJson(wanted, { store: client, recursive: true });
    expect(copied.map((p) => p.path).sort()).toEqual([...closure.paths, onlyOnA].sort());
    await verify(client, wanted);
    // Every NAR went through C's cache: one verified entry per path, nothing half-written.
    await waitFor("C's cache to hold the four NARs", async () => {
      const names = await readdir(cacheDir);
      const nars = names.filter((n) => n.endsWith(".entry")).sort();
      return nars.length === 4 && !names.some((n) => n.startsWith(".tmp-")) ? nars : undefined;
    });
    const names = await readdir(cacheDir);
    for (const p of [...closure.paths, onlyOnA]) {
      expect(names.some((n) => n.startsWith(`${hashPartOf(p)}-`) && n.endsWith(".entry"))).toBe(
        true,
      );
    }
    expect(nodeC.logs().filter((l) => l.level >= 50)).toEqual([]);
    // Nix asked for the top path first: C looked up the rest of the closure ahead of it.
    const metrics = (await httpRequest(`${nodeC.url}/metrics`)).body.toString("utf8");
    expect(metrics).toMatch(/^irisd_read_ahead_total\{kind="narinfo"\} [1-9]/m);
  });

  it("a second copy is served from C's cache with B stopped", async () => {
    await nodeB.stop();
    try {
      const client = path.join(dir, "client-2");
      await nixCopy({
        from: nodeC.url,
        to: client,
        paths: [closure.top],
        trustedPublicKeys: [keys.publicKey],
        cacheDir: path.join(dir, "xdg-2"),
      });
      await verify(client, [closure.top]);
      const metrics = (await httpRequest(`${nodeC.url}/metrics`)).body.toString("utf8");
      expect(metrics).toMatch(/^irisd_nar_cache_hits_total [1-9]/m);
    } finally {
      nodeB = await startB();
    }
  });

  it("a path added to B's store and then signed is found through C within seconds, without a restart", async () => {
    const later = await buildClosure(dir, uniqueSalt("p2p-later"));
    // Copied unsigned (not serveable yet), then signed in B's store, as `ogygia iris push` would.
    await storeB.copy([later.top]);
    expect((await httpRequest(`${nodeB.url}/${hashPartOf(later.top)}.narinfo`)).status).toBe(404);
    await runNix("nix", [
      "store",
      "sign",
      "--store",
      storeB.root,
      "-r",
      "--key-file",
      keys.secretKeyFile,
      later.top,
    ]);
    // B's index notices within about a second; C revalidates B's filter before a negative.
    await waitFor(
      "C to find the new path through B",
      async () => {
        const res = await httpRequest(`${nodeC.url}/${hashPartOf(later.top)}.narinfo`);
        return res.status === 200 ? res : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    const client = path.join(dir, "client-3");
    await nixCopy({
      from: nodeC.url,
      to: client,
      paths: [later.top],
      trustedPublicKeys: [keys.publicKey],
      cacheDir: path.join(dir, "xdg-3"),
    });
    await verify(client, [later.top]);
  });

  it("C serves its cached NARs to peers on /local/, and never fans out there", async () => {
    const cached = await httpRequest(`${nodeC.url}/local/${hashPartOf(closure.mid)}.narinfo`);
    expect(cached.status).toBe(200);
    // A path only A has: C answers clients through A, but not peers.
    const extra = await buildClosure(dir, uniqueSalt("p2p-a2"));
    await storeA.copy([extra.leaf]);
    await signPaths(keys, [extra.leaf], { store: storeA.root });
    await waitFor("A to index its new path", async () => {
      const res = await httpRequest(`${nodeC.url}/${hashPartOf(extra.leaf)}.narinfo`);
      return res.status === 200 ? true : undefined;
    });
    expect((await httpRequest(`${nodeC.url}/local/${hashPartOf(extra.leaf)}.narinfo`)).status).toBe(
      404,
    );
  });
});
