/**
 * The NAR wire format (Nix's `archive.cc`): every token is a string written
 * as a little-endian u64 length, the bytes, and zero padding to 8 bytes.
 * File contents are one such string. Directory entries are sorted bytewise.
 */

export const NAR_MAGIC = "nix-archive-1";

/** Linux NAME_MAX: no file name in a restorable NAR is longer. */
export const MAX_NAME_BYTES = 255;
/** Linux PATH_MAX - 1: no symlink target is longer. */
export const MAX_TARGET_BYTES = 4095;
/**
 * Deepest directory nesting accepted. Nix reads and writes trees through
 * absolute paths, which PATH_MAX (4096) bounds well below this.
 */
export const MAX_DEPTH = 2048;

/** Zero bytes needed after `length` bytes to reach a multiple of 8. */
export function padding(length: number): number {
  return (8 - (length % 8)) % 8;
}

/** The encoded form of a token sequence (length, bytes, padding each). */
export function encodeTokens(...tokens: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const token of tokens) {
    const bytes = Buffer.from(token, "utf8");
    const head = Buffer.alloc(8);
    head.writeUInt32LE(bytes.length, 0);
    parts.push(head, bytes, Buffer.alloc(padding(bytes.length)));
  }
  return Buffer.concat(parts);
}

/** Encoded size of a string token of `length` bytes. */
export function tokenSize(length: number): number {
  return 8 + length + padding(length);
}

export const ZEROS = Buffer.alloc(8);
