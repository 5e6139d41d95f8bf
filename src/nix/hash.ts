/**
 * Hashes as Nix writes them: `sha256:<nix32>` (narinfo, fingerprints),
 * `sha256:<hex>` (the store database), `sha256-<base64>` (SRI, `nix path-info
 * --json`). Parsing follows Nix's `Hash::parseAnyPrefixed`: the encoding is
 * told apart by its length.
 */

import { createHash } from "node:crypto";

import { OgygiaError } from "../core/index.js";
import { decodeNix32, encodeNix32, nix32Length } from "./nix32.js";

export type HashAlgorithm = "md5" | "sha1" | "sha256" | "sha512";

export type HashFormat = "nix32" | "base16" | "base64" | "sri";

export interface Hash {
  readonly algorithm: HashAlgorithm;
  readonly digest: Buffer;
}

const DIGEST_BYTES: Record<HashAlgorithm, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

function isHashAlgorithm(name: string): name is HashAlgorithm {
  return Object.hasOwn(DIGEST_BYTES, name);
}

/** Digest size in bytes of `algorithm`. */
export function hashSize(algorithm: HashAlgorithm): number {
  return DIGEST_BYTES[algorithm];
}

function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

function hashError(text: string, reason: string): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_HASH", `invalid hash '${text}': ${reason}`);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const HEX = /^[0-9a-fA-F]*$/;

function decodeBase64Strict(text: string, original: string): Buffer {
  if (text.length % 4 !== 0 || !BASE64.test(text)) {
    throw hashError(original, "not valid base64");
  }
  return Buffer.from(text, "base64");
}

function decodeBody(
  body: string,
  algorithm: HashAlgorithm,
  sri: boolean,
  original: string,
): Buffer {
  const size = DIGEST_BYTES[algorithm];
  let digest: Buffer;
  if (!sri && body.length === size * 2) {
    if (!HEX.test(body)) throw hashError(original, "not valid base16");
    digest = Buffer.from(body, "hex");
  } else if (!sri && body.length === nix32Length(size)) {
    try {
      digest = decodeNix32(body, size);
    } catch (err) {
      throw new OgygiaError("ERR_OGYGIA_NIX_HASH", `invalid hash '${original}': not valid nix32`, {
        cause: err,
      });
    }
  } else if (sri || body.length === base64Length(size)) {
    digest = decodeBase64Strict(body, original);
  } else {
    throw hashError(original, `wrong length for a ${algorithm} hash`);
  }
  if (digest.length !== size) throw hashError(original, `wrong length for a ${algorithm} hash`);
  return digest;
}

/**
 * Parses `algo:<base16|nix32|base64>` or SRI `algo-<base64>`. With
 * `algorithm`, also accepts the unprefixed body and checks the algorithm.
 */
export function parseHash(text: string, algorithm?: HashAlgorithm): Hash {
  const colon = text.indexOf(":");
  const dash = text.indexOf("-");
  let name: string | undefined;
  let body = text;
  let sri = false;
  if (colon >= 0) {
    name = text.slice(0, colon);
    body = text.slice(colon + 1);
  } else if (dash >= 0) {
    name = text.slice(0, dash);
    body = text.slice(dash + 1);
    sri = true;
  }
  if (name === undefined) {
    if (algorithm === undefined) throw hashError(text, "it does not name its algorithm");
    return { algorithm, digest: decodeBody(body, algorithm, false, text) };
  }
  if (!isHashAlgorithm(name)) throw hashError(text, `unknown hash algorithm '${name}'`);
  if (algorithm !== undefined && name !== algorithm) {
    throw hashError(text, `expected a ${algorithm} hash, got ${name}`);
  }
  return { algorithm: name, digest: decodeBody(body, name, sri, text) };
}

/**
 * Renders a hash. `nix32`/`base16`/`base64` carry the `algo:` prefix unless
 * `prefix` is false; `sri` is always `algo-<base64>`.
 */
export function formatHash(hash: Hash, format: HashFormat, prefix = true): string {
  let body: string;
  switch (format) {
    case "nix32":
      body = encodeNix32(hash.digest);
      break;
    case "base16":
      body = hash.digest.toString("hex");
      break;
    case "base64":
      body = hash.digest.toString("base64");
      break;
    case "sri":
      return `${hash.algorithm}-${hash.digest.toString("base64")}`;
  }
  return prefix ? `${hash.algorithm}:${body}` : body;
}

/** True when both hashes have the same algorithm and digest. */
export function hashEquals(a: Hash, b: Hash): boolean {
  return a.algorithm === b.algorithm && a.digest.equals(b.digest);
}

/** Hashes bytes or a string (UTF-8) with `algorithm`. */
export function hashBytes(algorithm: HashAlgorithm, data: string | Uint8Array): Hash {
  return { algorithm, digest: createHash(algorithm).update(data).digest() };
}

/** Wraps a raw digest, checking its size. */
export function hashFromDigest(algorithm: HashAlgorithm, digest: Uint8Array): Hash {
  if (digest.length !== DIGEST_BYTES[algorithm]) {
    throw new OgygiaError(
      "ERR_OGYGIA_NIX_HASH",
      `a ${algorithm} digest has ${DIGEST_BYTES[algorithm]} bytes, got ${digest.length}`,
    );
  }
  return { algorithm, digest: Buffer.from(digest) };
}

/** Converts between any accepted hash spelling and `format` (`sha256:<nix32>` by default). */
export function convertHash(text: string, format: HashFormat = "nix32"): string {
  return formatHash(parseHash(text), format);
}

/** Nix's `compressHash`: folds a digest into `size` bytes by XOR. */
export function compressHash(digest: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < digest.length; i++) {
    out[i % size] = (out[i % size] ?? 0) ^ (digest[i] ?? 0);
  }
  return out;
}
