/**
 * A NAR a peer serves zstd-compressed (`Compression: zstd` in its narinfo),
 * decompressed as its bytes arrive. The compressed bytes are checked
 * against the narinfo's `FileHash` and `FileSize` when it gives them; the
 * decompressed NAR goes through the same checks as any other
 * (`nar-fetch.ts`: NAR hash, size, structure), which also bound its size.
 *
 * A compressed body cannot start in the middle: continuing a download at
 * byte `offset` of the NAR fetches the whole file again and drops the
 * first `offset` decompressed bytes.
 */

import { createHash } from "node:crypto";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream";

import { OgygiaError } from "../../core/index.js";
import { formatHash, hashFromDigest, hashEquals, type Hash } from "../../nix/index.js";
import { zstdDecompressStream } from "../zstd/index.js";

export interface ZstdNarOptions {
  /** The compressed body, as it arrives. */
  body: AsyncIterable<Buffer>;
  /** Decompressed bytes to drop first. */
  offset: number;
  fileHash?: Hash | undefined;
  fileSize?: number | undefined;
  /** Names the NAR and the peer in errors: `/nix/store/... from http://peer`. */
  what: string;
}

function fileError(what: string, detail: string): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD_PEER", `the zstd NAR of ${what}: ${detail}`);
}

/** The NAR decompressed from `options.body`, from `offset` on. */
export async function decompressedNar(options: ZstdNarOptions): Promise<Readable> {
  const { fileHash, fileSize, what } = options;
  const decompress = await zstdDecompressStream();
  const hasher = fileHash === undefined ? undefined : createHash("sha256");
  let size = 0;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      size += chunk.length;
      if (fileSize !== undefined && size > fileSize) {
        callback(fileError(what, `longer than its FileSize ${fileSize}`));
        return;
      }
      hasher?.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      if (fileSize !== undefined && size !== fileSize) {
        callback(fileError(what, `${size} bytes, not its FileSize ${fileSize}`));
        return;
      }
      if (hasher !== undefined && fileHash !== undefined) {
        const actual = hashFromDigest("sha256", hasher.digest());
        if (!hashEquals(actual, fileHash)) {
          callback(
            fileError(
              what,
              `FileHash mismatch: ${formatHash(actual, "nix32")}, the narinfo says ${formatHash(fileHash, "nix32")}`,
            ),
          );
          return;
        }
      }
      callback();
    },
  });
  let skip = options.offset;
  const skipper = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        callback();
        return;
      }
      const rest = skip > 0 ? chunk.subarray(skip) : chunk;
      skip = 0;
      callback(null, rest);
    },
  });
  const source = Readable.from(options.body, { objectMode: false });
  // Errors end up on `skipper`, the stream the download reads; destroying it stops the rest.
  pipeline(source, check, decompress, skipper, (err) => {
    if (err !== null && !skipper.destroyed) skipper.destroy(err);
  });
  return skipper;
}
