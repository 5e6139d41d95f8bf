import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  mkdirSync,
  openSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  formatHash,
  hashPath,
  narSizeOf,
  narStream,
  parseHash,
  physicalPath,
  restoreNar,
  storeLocation,
  writeNar,
} from "../src/nix/index.js";
import {
  buildClosure,
  makeChrootStore,
  nixDump,
  nixDumpDigest,
  nixRestore,
  pathInfoJson,
  uniqueSalt,
  type ChrootStore,
  type TestClosure,
} from "./helpers/nix.js";
import { removeDir, tempDir } from "./helpers/process.js";

async function ourDump(root: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of narStream(root)) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Streams our NAR through SHA-256, as nixDumpDigest does for Nix's. */
async function ourDigest(root: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      done();
    },
  });
  await writeNar(root, sink);
  return { sha256: hash.digest("hex"), size };
}

/** A tree with every feature the NAR format has to get right. */
function makeTree(root: string): void {
  mkdirSync(root);
  writeFileSync(path.join(root, "plain"), "plain file\n");
  writeFileSync(path.join(root, "empty-file"), "");
  writeFileSync(path.join(root, "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(path.join(root, "run.sh"), 0o755);
  writeFileSync(path.join(root, "owner-x-only"), "x");
  chmodSync(path.join(root, "owner-x-only"), 0o700);
  writeFileSync(path.join(root, "group-x-only"), "x");
  chmodSync(path.join(root, "group-x-only"), 0o650);
  mkdirSync(path.join(root, "empty-dir"));
  mkdirSync(path.join(root, "target-dir"));
  writeFileSync(path.join(root, "target-dir", "inside"), "inside\n");
  symlinkSync("target-dir", path.join(root, "link-to-dir"));
  symlinkSync("/does/not/exist", path.join(root, "dangling"));
  symlinkSync("plain", path.join(root, "link-to-file"));
  symlinkSync("../../../../escape", path.join(root, "relative-up"));
  writeFileSync(path.join(root, "name with spaces"), "spaces\n");
  writeFileSync(path.join(root, "ünïcödé-名前"), "utf-8\n");
  writeFileSync(path.join(root, "UPPER"), "sorts before lower case\n");
  writeFileSync(path.join(root, "-dash"), "dash\n");
  // A name that is not UTF-8 at all: only raw bytes get this right.
  const rootBytes = Buffer.from(root);
  writeFileSync(Buffer.concat([rootBytes, Buffer.from([0x2f, 0x6e, 0xff, 0xfe, 0x80])]), "bytes\n");
  // Deep nesting.
  let deep = path.join(root, "deep");
  for (let i = 0; i < 120; i++) deep = path.join(deep, `level${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(path.join(deep, "bottom"), "deep\n");
  // Thousands of entries in one directory, with sizes around the padding boundary.
  const many = path.join(root, "many");
  mkdirSync(many);
  for (let i = 0; i < 5000; i++) {
    writeFileSync(path.join(many, `entry-${i}`), "z".repeat(i % 19));
  }
}

describe("NAR serialisation against nix-store --dump (Nix 2.8)", () => {
  let dir: string;
  let tree: string;

  beforeAll(async () => {
    dir = await tempDir("nix-nar");
    tree = path.join(dir, "tree");
    makeTree(tree);
  });

  afterAll(async () => {
    await removeDir(dir);
  });

  it("gives the same bytes for executables, symlinks, empty entries, odd names, depth and breadth", async () => {
    const theirs = await nixDump(tree);
    const ours = await ourDump(tree);
    expect(ours.length).toBe(theirs.length);
    expect(ours.equals(theirs)).toBe(true);
    expect(narSizeOf(tree)).toBe(theirs.length);
    const hashed = await hashPath(tree);
    expect(formatHash(hashed.narHash, "base16", false)).toBe(
      createHash("sha256").update(theirs).digest("hex"),
    );
  });

  it("gives the same bytes for a lone file, an executable and a symlink at the root", async () => {
    for (const name of ["plain", "run.sh", "empty-file", "dangling", "link-to-dir"]) {
      const file = path.join(tree, name);
      expect((await ourDump(file)).equals(await nixDump(file)), name).toBe(true);
    }
  });

  it("round-trips: Nix restores our NAR and dumps it to the same bytes, and we restore Nix's", async () => {
    const ours = await ourDump(tree);
    const byNix = path.join(dir, "restored-by-nix");
    await nixRestore(ours, byNix);
    expect((await nixDump(byNix)).equals(ours)).toBe(true);

    const theirs = await nixDump(tree);
    const byUs = path.join(dir, "restored-by-us");
    const result = await restoreNar([theirs], byUs, { expectedSize: theirs.length });
    expect(result.narSize).toBe(theirs.length);
    expect((await nixDump(byUs)).equals(theirs)).toBe(true);
  });

  it("streams a file over 64 MB identically, in bounded memory", async () => {
    const bigDir = path.join(dir, "big");
    mkdirSync(bigDir);
    const bigFile = path.join(bigDir, "blob");
    const fd = openSync(bigFile, "w");
    for (let i = 0; i < 72; i++) writeSync(fd, randomBytes(1024 * 1024));
    writeSync(fd, Buffer.from("odd tail")); // a size that needs padding
    closeSync(fd);
    writeFileSync(path.join(bigDir, "small"), "small\n");
    try {
      const theirs = await nixDumpDigest(bigDir);
      expect(theirs.size).toBeGreaterThan(72 * 1024 * 1024);
      expect(await ourDigest(bigDir)).toEqual(theirs);

      // With recycled buffers, no more than a few chunks are ever allocated.
      const hash = createHash("sha256");
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          hash.update(chunk);
          peak = Math.max(peak, process.memoryUsage().arrayBuffers);
          setImmediate(done);
        },
      });
      await writeNar(bigDir, sink, { reuseBuffers: true });
      expect(hash.digest("hex")).toBe(theirs.sha256);
      expect(peak - before).toBeLessThan(16 * 1024 * 1024);
    } finally {
      await removeDir(bigDir);
    }
  });
});

describe("NARs of real store paths", () => {
  let dir: string;
  let closure: TestClosure;
  let store: ChrootStore;

  beforeAll(async () => {
    dir = await tempDir("nix-nar-store");
    closure = await buildClosure(dir, uniqueSalt("nar"));
    store = await makeChrootStore([closure.top], { root: path.join(dir, "store") });
  });

  afterAll(async () => {
    await removeDir(dir);
  });

  it("hashes every path of a chroot store to the NAR hash and size in its database", async () => {
    const location = storeLocation({ root: store.root });
    const infos = await pathInfoJson([], { store: store.root, all: true });
    expect(infos.length).toBe(3);
    for (const info of infos) {
      const physical = physicalPath(location, info.path);
      const { narHash, narSize } = await hashPath(physical);
      expect(formatHash(narHash, "sri"), info.path).toBe(info.narHash);
      expect(narSize, info.path).toBe(info.narSize);
      expect(narHash.digest.equals(parseHash(info.narHash).digest)).toBe(true);
    }
  });

  it("serves any byte range of a store path's NAR as the slice of nix-store --dump", async () => {
    const physical = physicalPath(storeLocation({ root: store.root }), closure.mid);
    const whole = await nixDump(physical);
    for (const [start, length] of [
      [0, 1],
      [0, whole.length],
      [8, 100],
      [whole.length - 1, 1],
      [whole.length, 10],
      [Math.floor(whole.length / 3), Math.floor(whole.length / 3)],
    ] as const) {
      const parts: Buffer[] = [];
      for await (const chunk of narStream(physical, { start, length })) parts.push(chunk);
      expect(Buffer.concat(parts).equals(whole.subarray(start, start + length))).toBe(true);
    }
  });
});
