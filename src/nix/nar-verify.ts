/**
 * Checking a NAR that arrives from a peer: a pass-through stream that
 * hashes and counts every byte, optionally parses the structure on the way,
 * and fails the stream when the archive is malformed, longer than announced,
 * or does not end with the expected hash and size.
 */

import { createHash, type Hash as CryptoHash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";

import { OgygiaError } from "../core/index.js";
import { formatHash, hashEquals, hashFromDigest, type Hash } from "./hash.js";
import { createNarParser, type NarParser } from "./nar-parse.js";

export interface NarVerifierOptions {
  /** Named in error messages (store path, peer URL). */
  what?: string;
  expectedHash?: Hash;
  expectedSize?: number;
  /** Also parse the archive and reject malformed ones (default true). */
  validate?: boolean;
}

export interface NarDigest {
  narHash: Hash;
  narSize: number;
}

/** Checks an archive's measured hash and size against what was expected. */
export function checkNarExpectations(
  got: NarDigest,
  expected: { expectedHash?: Hash | undefined; expectedSize?: number | undefined },
  what: string,
): void {
  if (expected.expectedSize !== undefined && got.narSize !== expected.expectedSize) {
    throw new OgygiaError(
      "ERR_OGYGIA_NIX_NAR",
      `NAR size mismatch for ${what}: expected ${expected.expectedSize} bytes, got ${got.narSize}`,
    );
  }
  if (expected.expectedHash !== undefined && !hashEquals(got.narHash, expected.expectedHash)) {
    throw new OgygiaError(
      "ERR_OGYGIA_NIX_NAR",
      `NAR hash mismatch for ${what}: expected ${formatHash(expected.expectedHash, "nix32")}, got ${formatHash(got.narHash, "nix32")}`,
    );
  }
}

/** A Transform that passes a NAR through unchanged while checking it. */
export class NarVerifier extends Transform {
  private readonly hasher: CryptoHash = createHash("sha256");
  private readonly parser: NarParser | undefined;
  private readonly what: string;
  private size = 0;
  private digest: NarDigest | undefined;

  constructor(private readonly options: NarVerifierOptions = {}) {
    super();
    this.what = options.what ?? "the stream";
    this.parser =
      options.validate === false
        ? undefined
        : createNarParser(() => undefined, { what: this.what, maxSize: options.expectedSize });
  }

  /** Hash and size of everything that passed, once the stream has finished. */
  result(): NarDigest {
    if (this.digest === undefined) throw new Error("NarVerifier.result() before the stream ended");
    return this.digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.size += chunk.length;
      const expected = this.options.expectedSize;
      if (expected !== undefined && this.size > expected) {
        throw new OgygiaError(
          "ERR_OGYGIA_NIX_NAR",
          `NAR from ${this.what} is longer than the expected ${expected} bytes`,
        );
      }
      this.hasher.update(chunk);
      this.parser?.write(chunk);
      done(null, chunk);
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      this.parser?.end();
      const digest = {
        narHash: hashFromDigest("sha256", this.hasher.digest()),
        narSize: this.size,
      };
      checkNarExpectations(digest, this.options, this.what);
      this.digest = digest;
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** A pass-through NAR checker; see NarVerifier. */
export function createNarVerifier(options: NarVerifierOptions = {}): NarVerifier {
  return new NarVerifier(options);
}

/** Reads a whole NAR stream, checking it; returns its hash and size. */
export async function verifyNar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: NarVerifierOptions = {},
): Promise<NarDigest> {
  const what = options.what ?? "the stream";
  const hasher = createHash("sha256");
  const parser =
    options.validate === false
      ? undefined
      : createNarParser(() => undefined, { what, maxSize: options.expectedSize });
  let size = 0;
  for await (const chunk of source) {
    size += chunk.length;
    if (options.expectedSize !== undefined && size > options.expectedSize) {
      throw new OgygiaError(
        "ERR_OGYGIA_NIX_NAR",
        `NAR from ${what} is longer than the expected ${options.expectedSize} bytes`,
      );
    }
    hasher.update(chunk);
    parser?.write(chunk);
  }
  parser?.end();
  const digest = { narHash: hashFromDigest("sha256", hasher.digest()), narSize: size };
  checkNarExpectations(digest, options, what);
  return digest;
}
