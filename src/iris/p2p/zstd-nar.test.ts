import { createHash } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

import { describe, expect, it } from "vitest";

import { hashFromDigest } from "../../nix/index.js";
import { zstdCompressStream } from "../zstd/index.js";
import { decompressedNar } from "./zstd-nar.js";

const nar = Buffer.from("nix-archive-1 ".repeat(50_000));

async function compressed(): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([nar]),
    await zstdCompressStream(),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

/** The bytes as a peer's body delivers them: in small pieces, one at a time. */
async function* inPieces(bytes: Buffer, size = 1000): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) {
    await Promise.resolve();
    yield bytes.subarray(i, i + size);
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (bytes: Buffer) =>
  hashFromDigest("sha256", createHash("sha256").update(bytes).digest());

describe("decompressedNar", () => {
  it("decompresses as the pieces arrive, from the offset asked, checking FileHash and FileSize", async () => {
    const file = await compressed();
    expect(file.length).toBeLessThan(nar.length / 10);
    const whole = await decompressedNar({
      body: inPieces(file),
      offset: 0,
      fileHash: sha256(file),
      fileSize: file.length,
      what: "/nix/store/x from http://peer",
    });
    expect((await readAll(whole)).equals(nar)).toBe(true);
    const rest = await decompressedNar({ body: inPieces(file), offset: 123_457, what: "x" });
    expect((await readAll(rest)).equals(nar.subarray(123_457))).toBe(true);
  });

  it("fails naming the path and the peer when the file is not the one the narinfo describes", async () => {
    const file = await compressed();
    const what = "/nix/store/x from http://peer";
    const wrongHash = await decompressedNar({
      body: inPieces(file),
      offset: 0,
      fileHash: sha256(Buffer.from("other")),
      what,
    });
    await expect(readAll(wrongHash)).rejects.toThrow(
      /zstd NAR of \/nix\/store\/x from http:\/\/peer: FileHash mismatch/,
    );
    const tooLong = await decompressedNar({ body: inPieces(file), offset: 0, fileSize: 10, what });
    await expect(readAll(tooLong)).rejects.toThrow(/longer than its FileSize 10/);
    const corrupt = await decompressedNar({ body: inPieces(nar), offset: 0, what });
    await expect(readAll(corrupt)).rejects.toThrow();
  });
});
