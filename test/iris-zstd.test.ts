/**
 * `[server] compression = "zstd"` with real Nix 2.8 and real daemons: A
 * serves a signed closure (and a 3 MB path, compressible like most store
 * paths) as zstd; a real `nix copy --from A` checks signatures and NAR
 * hashes. B, with A as its peer and no compression of its own, fetches the
 * zstd NARs from A (decompressing and verifying them) and serves them to
 * its own Nix client uncompressed.
 */

import { execFileSync } from "node:child_process";
import { readdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { httpRequest, startIrisd, stopAllIrisd, type IrisdProcess } from "./helpers/irisd.js";
import {
  addToStore,
  hashPartOf,
  makeChrootStore,
  nixVerify,
  nixCopy,
  nixDump,
  pathInfoJson,
  signedClosureStore,
  uniqueSalt,
  type ChrootStore,
  type TestClosure,
  type TestKeys,
} from "./helpers/nix.js";
import { runCommand } from "./helpers/cli.js";
import { removeDir, tempDir } from "./helpers/process.js";

let dir: string;
let keys: TestKeys;
let closure: TestClosure;
let big: string;
let storeA: ChrootStore;
let storeB: ChrootStore;
let nodeA: IrisdProcess;
let nodeB: IrisdProcess;
let wanted: string[];

/** A text file of `bytes`, compressible like the scripts and docs in store paths. */
async function textFile(file: string, bytes: number, salt: string): Promise<void> {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `${salt} line ${i}: export PATH=/nix/store/${i % 97}-bin:$PATH # ${(i * 7919) % 10007}\n`;
    lines.push(line);
    size += line.length;
  }
  await writeFile(file, lines.join(""));
}

/** NAR hashes of what arrived, and signatures by the test key. */
async function verify(store: string, paths: readonly string[]): Promise<void> {
  await nixVerify({ store, paths, trustedPublicKeys: [keys.publicKey] });
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name.replace(/[{}"]/g, "\\$&")} (\\d+)`, "m").exec(text);
  return match === null ? 0 : Number(match[1]);
}

beforeAll(async () => {
  dir = await tempDir("iris-zstd");
  const salt = uniqueSalt("zstd-big");
  const file = path.join(dir, `big-${salt}.txt`);
  await textFile(file, 3 * 1024 * 1024, salt);
  big = await addToStore(file);
  ({
    closure,
    keys,
    store: storeA,
  } = await signedClosureStore(dir, "zstd", {
    storeName: "a",
    extraPaths: [big],
    signExtra: true,
  }));
  wanted = [closure.top, big];
  const marker = path.join(dir, "marker-b");
  await writeFile(marker, uniqueSalt("marker-b"));
  storeB = await makeChrootStore([await addToStore(marker)], { root: path.join(dir, "b") });
  nodeA = await startIrisd({
    storeRoot: storeA.root,
    cache: { dir: path.join(dir, "cache-a") },
    compression: "zstd",
  });
  nodeB = await startIrisd({
    storeRoot: storeB.root,
    peers: [nodeA.url],
    trustedKeys: [keys.publicKey],
    cache: { dir: path.join(dir, "cache-b") },
  });
}, 180_000);

afterAll(async () => {
  await stopAllIrisd();
  await removeDir(dir);
});

describe("irisd serving zstd", () => {
  it("a narinfo names the .nar.zst with the FileHash and FileSize of the bytes its URL serves", async () => {
    const narinfo = await httpRequest(`${nodeA.url}/${hashPartOf(big)}.narinfo`);
    expect(narinfo.status).toBe(200);
    const text = narinfo.body.toString("utf8");
    expect(text).toContain("Compression: zstd");
    const url = /^URL: (.*)$/m.exec(text)?.[1] ?? "";
    expect(url).toMatch(/^nar\/[0-9a-z]{32}-[0-9a-z]{52}\.nar\.zst$/);
    const file = await httpRequest(`${nodeA.url}/${url}`);
    expect(file.status).toBe(200);
    expect(file.headers["content-type"]).toBe("application/zstd");
    expect(`FileSize: ${file.body.length}`).toBe(/^FileSize: .*$/m.exec(text)?.[0]);
    const zst = path.join(dir, "big.nar.zst");
    await writeFile(zst, file.body);
    const fileHash = (
      await runCommand("nix-hash", ["--type", "sha256", "--flat", "--base32", zst])
    ).stdout.trim();
    expect(text).toContain(`FileHash: sha256:${fileHash}`);
    // The file is the NAR, compressed: zstd's own tool gives back nix-store --dump's bytes.
    const nar = execFileSync("zstd", ["-d", "-c", zst], { maxBuffer: 64 * 1024 * 1024 });
    expect(Buffer.compare(nar, await nixDump(big))).toBe(0);
    expect(file.body.length).toBeLessThan(nar.length / 2);
    // HEAD answers without compressing; the uncompressed URL still works.
    const head = await httpRequest(`${nodeA.url}/${hashPartOf(closure.leaf)}.narinfo`, {
      method: "HEAD",
    });
    expect(head.status).toBe(200);
    const plainUrl = url.replace(/\.zst$/, "");
    expect((await httpRequest(`${nodeA.url}/${plainUrl}`)).body.equals(nar)).toBe(true);
    // Kept on disk under [cache] dir/zstd, named by NAR hash and file hash.
    const files = await readdir(path.join(dir, "cache-a", "zstd"));
    expect(files).toContain(`${url.slice(4 + 33, -8)}-${fileHash}.nar.zst`);
    const version = JSON.parse((await httpRequest(`${nodeA.url}/version`)).body.toString()) as {
      features: string[];
    };
    expect(version.features).toContain("zstd");
  });

  it("a real nix copy --from the zstd irisd checks signatures and NAR hashes", async () => {
    const client = path.join(dir, "client-a");
    await nixCopy({
      from: nodeA.url,
      to: client,
      paths: wanted,
      trustedPublicKeys: [keys.publicKey],
      cacheDir: path.join(dir, "xdg-a"),
    });
    const copied = await pathInfoJson(wanted, { store: client, recursive: true });
    expect(copied.map((p) => p.path).sort()).toEqual([...closure.paths, big].sort());
    await verify(client, wanted);
    const metrics = (await httpRequest(`${nodeA.url}/metrics`)).body.toString("utf8");
    expect(metric(metrics, 'irisd_http_requests_total{route="nar-compressed",status="200"}')).toBe(
      5,
    );
    expect(metric(metrics, 'irisd_http_requests_total{route="nar",status="200"}')).toBe(1);
    expect(nodeA.logs().filter((l) => l.level >= 50)).toEqual([]);
  });

  it("a peer fetches zstd NARs from it, verifies them, and serves its own Nix client", async () => {
    const client = path.join(dir, "client-b");
    await nixCopy({
      from: nodeB.url,
      to: client,
      paths: wanted,
      trustedPublicKeys: [keys.publicKey],
      cacheDir: path.join(dir, "xdg-b"),
    });
    await verify(client, wanted);
    // B asked A for the compressed files, and serves uncompressed NARs itself.
    const metricsA = (await httpRequest(`${nodeA.url}/metrics`)).body.toString("utf8");
    expect(
      metric(metricsA, 'irisd_http_requests_total{route="local-nar-compressed",status="200"}'),
    ).toBeGreaterThanOrEqual(4);
    const narinfo = await httpRequest(`${nodeB.url}/${hashPartOf(big)}.narinfo`);
    expect(narinfo.body.toString("utf8")).toContain("Compression: none");
    const entries = (await readdir(path.join(dir, "cache-b"))).filter((n) => n.endsWith(".entry"));
    expect(entries.length).toBe(4);
    expect(nodeB.logs().filter((l) => l.level >= 40)).toEqual([]);
  });
});
