/**
 * Nix's base-32 ("nix32"): its own alphabet (no e, o, t, u) and a bit order
 * that reads the digest from its last byte, so a nix32 string is not RFC 4648.
 */

import { OgygiaError } from "../core/index.js";

export const NIX32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";

const DIGIT_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT_VALUE[NIX32_ALPHABET.charCodeAt(i)] = i;

/** Length of the nix32 encoding of `bytes` bytes (52 for SHA-256, 32 for a store path hash). */
export function nix32Length(bytes: number): number {
  return bytes === 0 ? 0 : Math.floor((bytes * 8 - 1) / 5) + 1;
}

/** Encodes bytes as nix32, exactly as Nix's `printHash32`. */
export function encodeNix32(bytes: Uint8Array): string {
  const length = nix32Length(bytes.length);
  let out = "";
  for (let n = length - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >>> 3;
    const j = b & 7;
    const low = (bytes[i] ?? 0) >>> j;
    const high = i + 1 < bytes.length ? (bytes[i + 1] ?? 0) << (8 - j) : 0;
    out += NIX32_ALPHABET.charAt((low | high) & 0x1f);
  }
  return out;
}

/** True when `text` uses only nix32 characters. */
export function isNix32(text: string): boolean {
  for (let k = 0; k < text.length; k++) {
    const code = text.charCodeAt(k);
    if (code >= 128 || DIGIT_VALUE[code] === -1) return false;
  }
  return true;
}

/**
 * Decodes nix32 into `byteLength` bytes (derived from the length when omitted).
 * Rejects foreign characters, a wrong length and set bits beyond the digest.
 */
export function decodeNix32(text: string, byteLength?: number): Buffer {
  const size = byteLength ?? Math.floor((text.length * 5) / 8);
  if (nix32Length(size) !== text.length) {
    throw new OgygiaError(
      "ERR_OGYGIA_NIX_HASH",
      `invalid nix32 string '${text}': length ${text.length} does not encode ${size} bytes`,
    );
  }
  const out = Buffer.alloc(size);
  for (let n = 0; n < text.length; n++) {
    const code = text.charCodeAt(text.length - n - 1);
    const digit = code < 128 ? (DIGIT_VALUE[code] ?? -1) : -1;
    if (digit < 0) {
      throw new OgygiaError(
        "ERR_OGYGIA_NIX_HASH",
        `invalid nix32 string '${text}': '${text.charAt(text.length - n - 1)}' is not a nix32 character`,
      );
    }
    const b = n * 5;
    const i = b >>> 3;
    const j = b & 7;
    out[i] = (out[i] ?? 0) | ((digit << j) & 0xff);
    const carry = digit >>> (8 - j);
    if (i + 1 < size) out[i + 1] = (out[i + 1] ?? 0) | carry;
    else if (carry !== 0) {
      throw new OgygiaError(
        "ERR_OGYGIA_NIX_HASH",
        `invalid nix32 string '${text}': it has bits set beyond ${size} bytes`,
      );
    }
  }
  return out;
}
