import { randomBytes } from "node:crypto";
import { readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Writable } from "node:stream";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { QUIET_LOG } from "../../../test/support/p2p.js";
import type { ServedNar } from "../http/index.js";
import { openCompressedNars, type CompressedNars } from "./compressed-nars.js";
import { tempDir } from "../../../test/support/temp.js";

let dir: string;
let store: CompressedNars | undefined;

beforeEach(async () => {
  dir = await tempDir("compressed-nars");
});

afterEach(async () => {
  store?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A fake NAR of `bytes` random (incompressible) bytes, named by `n`. */
function nar(n: number, bytes: number): ServedNar & { sent: number } {
  const body = randomBytes(bytes);
  const served = {
    storePath: `/nix/store/${"a".repeat(32)}-n${n}`,
    narSize: bytes,
    narHash: String(n).padStart(52, "0"),
    source: "test",
    sent: 0,
    async send(out: Writable) {
      served.sent += 1;
      out.end(body);
      await Promise.resolve();
    },
  };
  return served;
}

async function open(maxBytes: number): Promise<CompressedNars> {
  store = await openCompressedNars({ dir, maxBytes, timeToIdleMs: 3_600_000, log: QUIET_LOG });
  return store;
}

describe("compressed NARs", () => {
  it("compresses once for concurrent callers, keeps the file, and finds it again after a restart", async () => {
    const nars = await open(10_000_000);
    const one = nar(1, 100_000);
    const [a, b] = await Promise.all([nars.compress(one), nars.compress(one)]);
    expect(a).toBe(b);
    expect(one.sent).toBe(1);
    expect(a?.fileSize).toBeGreaterThan(0);
    nars.close();
    await writeFile(path.join(dir, ".tmp-left-over"), "x");
    const again = await open(10_000_000);
    expect(again.get(one.narHash)?.fileSize).toBe(a?.fileSize);
    expect((await readdir(dir)).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
  });

  it("stays under its limit, least recently used out first; a file over the limit is not kept", async () => {
    const nars = await open(250_000);
    const first = await nars.compress(nar(1, 100_000));
    await nars.compress(nar(2, 100_000));
    expect(nars.count).toBe(2);
    await nars.compress(nar(3, 100_000));
    expect(nars.totalBytes).toBeLessThanOrEqual(250_000);
    expect(nars.get(first?.narHash ?? "")).toBeUndefined();
    expect(await nars.compress(nar(4, 400_000))).toBeUndefined();
    expect((await readdir(dir)).length).toBe(nars.count);
  });
});
