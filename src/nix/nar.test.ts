import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { formatHash, hashBytes } from "./hash.js";
import { hashPath, narOfSize, narSizeOf, narStream, writeNar } from "./nar-dump.js";
import { MAX_DEPTH } from "./nar-format.js";
import { createNarParser, parseNar, type NarEvent } from "./nar-parse.js";
import { restoreNar } from "./nar-restore.js";
import { createNarVerifier, verifyNar } from "./nar-verify.js";
import {
  chunked,
  dirNode,
  encodeNar,
  fileNode,
  makeTempDir,
  nar,
  symlinkNode,
  type Token,
} from "../../test/support/nix.js";

async function collect(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of source) parts.push(chunk);
  return Buffer.concat(parts);
}

function dump(root: string, chunkSize?: number): Promise<Buffer> {
  return collect(narStream(root, { chunkSize }));
}

function mkfifo(file: string): void {
  // node:fs has no mkfifo; use the POSIX tool.
  execFileSync("mkfifo", [file]);
}

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = makeTempDir("nar-unit");
});
afterEach(() => {
  tmp.cleanup();
});

/** A small tree with every node kind, and its NAR built independently. */
function sampleTree(root: string): Buffer {
  mkdirSync(root);
  writeFileSync(path.join(root, "b"), "bee\n");
  writeFileSync(path.join(root, "B"), "");
  writeFileSync(path.join(root, "run"), "#!/bin/sh\n");
  chmodSync(path.join(root, "run"), 0o755);
  writeFileSync(path.join(root, "é"), "eight bytes!");
  mkdirSync(path.join(root, "empty"));
  mkdirSync(path.join(root, "sub"));
  writeFileSync(path.join(root, "sub", "x"), "x".repeat(100));
  symlinkSync("../b", path.join(root, "sub", "up"));
  symlinkSync("/nonexistent/target", path.join(root, "dangling"));
  // Bytewise order: "B" (0x42) < "b" < "dangling" < "empty" < "run" < "sub" < "é" (0xc3 0xa9).
  return nar(
    dirNode([
      ["B", fileNode("")],
      ["b", fileNode("bee\n")],
      ["dangling", symlinkNode("/nonexistent/target")],
      ["empty", dirNode([])],
      ["run", fileNode("#!/bin/sh\n", true)],
      [
        "sub",
        dirNode([
          ["up", symlinkNode("../b")],
          ["x", fileNode("x".repeat(100))],
        ]),
      ],
      ["é", fileNode("eight bytes!")],
    ]),
  );
}

describe("NAR serialisation", () => {
  it("writes every node kind exactly as the format defines, entries sorted bytewise", async () => {
    const root = path.join(tmp.dir, "tree");
    const expected = sampleTree(root);
    expect((await dump(root)).equals(expected)).toBe(true);
  });

  it("archives a lone file, an executable, an empty file and a symlink at the root", async () => {
    // The stream and the whole-NAR walk (narOfSize) alike.
    const same = async (root: string, expected: Buffer): Promise<boolean> =>
      (await dump(root)).equals(expected) &&
      narOfSize(root, expected.length)?.equals(expected) === true;
    const file = path.join(tmp.dir, "f");
    writeFileSync(file, "hello");
    expect(await same(file, nar(fileNode("hello")))).toBe(true);
    chmodSync(file, 0o700);
    expect(await same(file, nar(fileNode("hello", true)))).toBe(true);
    // Only the owner's execute bit counts, as in Nix.
    chmodSync(file, 0o655);
    expect(await same(file, nar(fileNode("hello")))).toBe(true);
    const empty = path.join(tmp.dir, "empty");
    writeFileSync(empty, "");
    expect(await same(empty, nar(fileNode("")))).toBe(true);
    const link = path.join(tmp.dir, "link");
    symlinkSync("f", link);
    expect(await same(link, nar(symlinkNode("f")))).toBe(true);
  });

  it("produces the same bytes whatever the chunk size, across chunk boundaries", async () => {
    const root = path.join(tmp.dir, "big");
    mkdirSync(root);
    const contents = createHash("sha512").update("seed").digest();
    const big = Buffer.concat(Array.from({ length: 3000 }, () => contents)); // 192000 bytes
    writeFileSync(path.join(root, "big"), big);
    for (let i = 0; i < 50; i++) writeFileSync(path.join(root, `f${i}`), "y".repeat(i * 37));
    const expected = await dump(root);
    for (const size of [64 * 1024, 65 * 1024 + 3, 1024 * 1024]) {
      expect((await dump(root, size)).equals(expected), `chunk ${size}`).toBe(true);
    }
    expect(narSizeOf(root)).toBe(expected.length);
    const hashed = await hashPath(root);
    expect(hashed.narSize).toBe(expected.length);
    expect(formatHash(hashed.narHash, "base16")).toBe(
      formatHash(hashBytes("sha256", expected), "base16"),
    );
  });

  it("dumps a tree of the expected size whole into one buffer, and nothing of another size", () => {
    const root = path.join(tmp.dir, "tree");
    const expected = sampleTree(root);
    const whole = narOfSize(root, expected.length);
    expect(whole?.equals(expected)).toBe(true);
    // Its own buffer, exactly the NAR: nothing else shares its memory.
    expect(whole?.buffer.byteLength).toBe(expected.length);
    // Expected smaller (the tree grew) or larger (it shrank): no NAR.
    expect(narOfSize(root, expected.length - 8)).toBeUndefined();
    expect(narOfSize(root, expected.length + 8)).toBeUndefined();
    expect(narOfSize(root, 1)).toBeUndefined();
    expect(() => narOfSize(path.join(tmp.dir, "missing"), 100)).toThrow(OgygiaError);
  });

  it("dumps whole into one buffer what it streams, below a directory with a non-ASCII name", async () => {
    const root = path.join(tmp.dir, "deep");
    mkdirSync(path.join(root, "dé", "ü"), { recursive: true });
    writeFileSync(path.join(root, "dé", "ü", "x"), "x".repeat(1000));
    writeFileSync(path.join(root, "dé", "a"), "");
    mkdirSync(path.join(root, "dé", "z"));
    symlinkSync("dé/a", path.join(root, "link"));
    const expected = await dump(root);
    expect(narOfSize(root, expected.length)?.equals(expected)).toBe(true);
  });

  it("produces any byte range as the matching slice of the whole NAR", async () => {
    const root = path.join(tmp.dir, "tree");
    const whole = sampleTree(root);
    const big = Buffer.alloc(200_000, 7);
    writeFileSync(path.join(root, "zz-big"), big);
    const full = await dump(root);
    const points = [0, 1, 7, 8, 9, 100, 255, 256, 1000, full.length - 200_010, full.length - 9];
    points.push(full.length - 1, full.length, Math.floor(full.length / 2));
    for (const start of points) {
      for (const length of [0, 1, 8, 13, 500, 100_000, full.length]) {
        const got = await collect(narStream(root, { start, length, chunkSize: 64 * 1024 }));
        const want = full.subarray(start, Math.min(full.length, start + length));
        expect(got.equals(want), `start ${start} length ${length}`).toBe(true);
      }
      const rest = await collect(narStream(root, { start }));
      expect(rest.equals(full.subarray(start)), `start ${start} to end`).toBe(true);
    }
    expect(whole.length).toBeLessThan(full.length);
  });

  it("writes to a slow Writable with bounded queueing and reports size and hash", async () => {
    const root = path.join(tmp.dir, "tree");
    sampleTree(root);
    writeFileSync(path.join(root, "zz-big"), Buffer.alloc(3_000_000, 1));
    const expected = await dump(root);
    const parts: Buffer[] = [];
    let maxBuffered = 0;
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, done) {
        parts.push(Buffer.from(chunk));
        maxBuffered = Math.max(maxBuffered, slow.writableLength);
        setTimeout(done, 1);
      },
    });
    const result = await writeNar(root, slow, { hash: true, chunkSize: 64 * 1024, maxInFlight: 2 });
    expect(Buffer.concat(parts).equals(expected)).toBe(true);
    expect(result.bytes).toBe(expected.length);
    expect(result.narSize).toBe(expected.length);
    expect(result.narHash?.digest.equals(hashBytes("sha256", expected).digest)).toBe(true);
    // Flow control: never more than maxInFlight chunks queued in the sink.
    expect(maxBuffered).toBeLessThanOrEqual(2 * 64 * 1024);
  });

  it("stops with the caller's abort signal", async () => {
    const root = path.join(tmp.dir, "big");
    writeFileSync(root, Buffer.alloc(3_000_000));
    const controller = new AbortController();
    const sink = new Writable({
      write(_chunk: Buffer, _encoding, done) {
        controller.abort(new Error("client went away"));
        setTimeout(done, 5);
      },
    });
    await expect(
      writeNar(root, sink, { chunkSize: 64 * 1024, signal: controller.signal }),
    ).rejects.toThrow(/client went away/);
  });

  it("recycles buffers only after the sink reports them written", async () => {
    const root = path.join(tmp.dir, "big");
    writeFileSync(root, Buffer.from(Array.from({ length: 1_000_000 }, (_, i) => i % 251)));
    const expected = await dump(root);
    const parts: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        parts.push(Buffer.from(chunk));
        setImmediate(done);
      },
    });
    await writeNar(root, sink, { reuseBuffers: true, chunkSize: 64 * 1024 });
    expect(Buffer.concat(parts).equals(expected)).toBe(true);
  });

  it("fails with ERR_OGYGIA_NIX_NAR when the sink is destroyed mid-stream", async () => {
    const root = path.join(tmp.dir, "big");
    writeFileSync(root, Buffer.alloc(2_000_000));
    const sink = new PassThrough({ highWaterMark: 1024 });
    setTimeout(() => sink.destroy(), 5);
    await expect(writeNar(root, sink, { chunkSize: 64 * 1024 })).rejects.toMatchObject({
      code: "ERR_OGYGIA_NIX_NAR",
    });
  });

  it("turns a sink's error event into a rejection instead of an unhandled error", async () => {
    const root = path.join(tmp.dir, "big");
    writeFileSync(root, Buffer.alloc(2_000_000));
    const sink = new Writable({
      write(_chunk: Buffer, _encoding, done) {
        done(new Error("disk full"));
      },
    });
    await expect(writeNar(root, sink, { chunkSize: 64 * 1024 })).rejects.toThrow(/disk full/);
  });

  it("refuses sockets, FIFOs and missing paths, naming the path", async () => {
    const dir = path.join(tmp.dir, "odd");
    mkdirSync(dir);
    mkfifo(path.join(dir, "fifo"));
    await expect(dump(dir)).rejects.toThrow(/fifo': it is not a regular file/);
    await expect(dump(path.join(tmp.dir, "missing"))).rejects.toMatchObject({
      code: "ERR_OGYGIA_NIX_NAR",
    });
    expect(() => narSizeOf(dir)).toThrow(OgygiaError);
    expect(() => narOfSize(dir, 4096)).toThrow(/fifo': it is not a regular file/);
  });
});

describe("NAR parsing", () => {
  const valid = nar(
    dirNode([
      ["a", fileNode("one", true)],
      ["b", dirNode([["c", symlinkNode("../a")]])],
    ]),
  );

  function events(bytes: Buffer, sizes: number[] = [bytes.length]): string[] {
    const seen: string[] = [];
    const data: Buffer[] = [];
    const parser = createNarParser((event: NarEvent) => {
      if (event.type === "data") data.push(Buffer.from(event.data));
      else if (event.type === "file")
        seen.push(`file ${event.path.toString()} x=${event.executable} ${event.size}`);
      else if (event.type === "symlink")
        seen.push(`symlink ${event.path.toString()} -> ${event.target.toString()}`);
      else seen.push(`${event.type} ${event.path.toString()}`);
    });
    for (const chunk of chunked(bytes, sizes)) parser.write(chunk);
    parser.end();
    seen.push(`data ${Buffer.concat(data).toString()}`);
    return seen;
  }

  it("reports the tree, whatever the input's chunking", () => {
    const expected = [
      "directory ",
      "file a x=true 3",
      "file-end a",
      "directory b",
      "symlink b/c -> ../a",
      "directory-end b",
      "directory-end ",
      "data one",
    ];
    expect(events(valid)).toEqual(expected);
    expect(events(valid, [1])).toEqual(expected);
    expect(events(valid, [3, 5, 7, 11])).toEqual(expected);
  });

  const bad: [string, Buffer, RegExp][] = [
    ["bad magic", encodeNar(["nix-archive-2", ...fileNode("")]), /bad magic/],
    ["a long magic", encodeNar(["x".repeat(100)]), /bad magic/],
    ["no magic", Buffer.alloc(0), /truncated/],
    [
      "non-zero padding",
      (() => {
        const b = nar(fileNode("abc"));
        b[b.length - 16 - 1] = 1; // last padding byte of the contents
        return b;
      })(),
      /non-zero padding/,
    ],
    [
      "unsorted entries",
      nar(
        dirNode([
          ["b", fileNode("")],
          ["a", fileNode("")],
        ]),
      ),
      /not sorted/,
    ],
    [
      "duplicate entries",
      nar(
        dirNode([
          ["a", fileNode("")],
          ["a", fileNode("")],
        ]),
      ),
      /duplicate entry/,
    ],
    ["an empty name", nar(dirNode([["", fileNode("")]])), /empty entry name/],
    ["'.'", nar(dirNode([[".", fileNode("")]])), /'\.' in the root is not allowed/],
    ["'..'", nar(dirNode([["..", fileNode("")]])), /'\.\.' in the root is not allowed/],
    ["a slash", nar(dirNode([["a/b", fileNode("")]])), /contains '\/'/],
    ["NUL", nar(dirNode([["a\0b", fileNode("")]])), /NUL/],
    ["a 256-byte name", nar(dirNode([["n".repeat(256), fileNode("")]])), /more than 255/],
    [
      "an unknown type",
      encodeNar(["nix-archive-1", "(", "type", "fifo", ")"]),
      /unknown node type/,
    ],
    [
      "a non-empty executable marker",
      encodeNar(["nix-archive-1", "(", "type", "regular", "executable", "x", "contents", "", ")"]),
      /marker is not empty/,
    ],
    [
      "a missing contents tag",
      encodeNar(["nix-archive-1", "(", "type", "regular", "size", "", ")"]),
      /expected 'contents'/,
    ],
    ["an empty symlink target", nar(symlinkNode("")), /empty target/],
    ["trailing bytes", Buffer.concat([nar(fileNode("")), Buffer.alloc(8)]), /after the end/],
    [
      "an impossible file size",
      (() => {
        const b = encodeNar(["nix-archive-1", "(", "type", "regular", "contents"]);
        const size = Buffer.alloc(8);
        size.writeBigUInt64LE(1n << 60n);
        return Buffer.concat([b, size]);
      })(),
      /impossibly large/,
    ],
    [
      "an oversized tag",
      encodeNar(["nix-archive-1", "(", "type", "directory", "e".repeat(5000)]),
      /more than 16/,
    ],
  ];

  for (const [what, bytes, reason] of bad) {
    it(`rejects ${what} with ERR_OGYGIA_NIX_NAR`, async () => {
      const run = parseNar([bytes], () => undefined, { what: "test" });
      await expect(run).rejects.toThrow(reason);
      await expect(parseNar([bytes], () => undefined)).rejects.toMatchObject({
        code: "ERR_OGYGIA_NIX_NAR",
      });
    });
  }

  it("rejects every truncation of a valid archive", async () => {
    for (let cut = 0; cut < valid.length; cut++) {
      await expect(parseNar([valid.subarray(0, cut)], () => undefined)).rejects.toThrow(
        /truncated/,
      );
    }
  });

  it("rejects content longer than the announced NAR size as soon as it is announced", async () => {
    const bytes = nar(fileNode("x".repeat(1000)));
    await expect(
      parseNar([bytes.subarray(0, 120)], () => undefined, { maxSize: 200 }),
    ).rejects.toThrow(/claims 1000 bytes/);
  });

  it(`rejects directories nested deeper than ${MAX_DEPTH}`, async () => {
    const open: Token[] = ["(", "type", "directory", "entry", "(", "name", "d", "node"];
    const close: Token[] = [")", ")", ")"];
    const tokens: Token[] = [];
    for (let i = 0; i <= MAX_DEPTH; i++) tokens.push(...open);
    tokens.push(...fileNode(""));
    for (let i = 0; i <= MAX_DEPTH; i++) tokens.push(...close);
    const node = tokens;
    await expect(parseNar([nar(node)], () => undefined)).rejects.toThrow(/deeper than/);
  });
});

describe("NAR restore and verification", () => {
  it("restores a tree that serialises back to the same bytes", async () => {
    const source = path.join(tmp.dir, "tree");
    const expected = sampleTree(source);
    const target = path.join(tmp.dir, "restored");
    const result = await restoreNar(chunked(expected, [5, 13, 4096]), target, {
      expectedSize: expected.length,
      expectedHash: hashBytes("sha256", expected),
    });
    expect(result.narSize).toBe(expected.length);
    expect((await dump(target)).equals(expected)).toBe(true);
    expect(readdirSync(tmp.dir).sort()).toEqual(["restored", "tree"]);
  });

  it("refuses an existing target and leaves nothing behind after a bad archive", async () => {
    const target = path.join(tmp.dir, "t");
    mkdirSync(target);
    await expect(restoreNar([nar(fileNode(""))], target)).rejects.toThrow(/already exists/);
    const broken = nar(
      dirNode([
        ["a", fileNode("data")],
        [
          "b",
          dirNode([
            ["z", fileNode("")],
            ["y", fileNode("")],
          ]),
        ],
      ]),
    );
    await expect(restoreNar([broken], path.join(tmp.dir, "u"))).rejects.toThrow(/not sorted/);
    const good = nar(fileNode("ok"));
    await expect(
      restoreNar([good], path.join(tmp.dir, "v"), { expectedHash: hashBytes("sha256", "no") }),
    ).rejects.toThrow(/hash mismatch/);
    expect(readdirSync(tmp.dir)).toEqual(["t"]);
  });

  it("passes a NAR through unchanged and checks hash and size", async () => {
    const bytes = nar(dirNode([["a", fileNode("x".repeat(10_000))]]));
    const verifier = createNarVerifier({
      expectedHash: hashBytes("sha256", bytes),
      expectedSize: bytes.length,
      what: "peer",
    });
    const out: Buffer[] = [];
    verifier.on("data", (chunk: Buffer) => out.push(chunk));
    const done = new Promise<void>((resolve, reject) => {
      verifier.on("end", resolve);
      verifier.on("error", reject);
    });
    for (const chunk of chunked(bytes, [333])) verifier.write(chunk);
    verifier.end();
    await done;
    expect(Buffer.concat(out).equals(bytes)).toBe(true);
    expect(verifier.result().narSize).toBe(bytes.length);

    await expect(
      verifyNar([bytes], { expectedHash: hashBytes("sha256", "other") }),
    ).rejects.toThrow(/hash mismatch/);
    await expect(verifyNar([bytes], { expectedSize: bytes.length - 8 })).rejects.toThrow(
      /longer than the expected/,
    );
    await expect(verifyNar([bytes], { expectedSize: bytes.length + 8 })).rejects.toThrow(
      /size mismatch/,
    );
    await expect(verifyNar([bytes.subarray(0, 100)])).rejects.toThrow(/truncated/);
    expect((await verifyNar([bytes])).narSize).toBe(bytes.length);
    expect(existsSync(tmp.dir)).toBe(true);
  });
});
