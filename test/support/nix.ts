/**
 * Helpers shared by the unit tests of `src/nix` and `src/iris`: an
 * independent NAR encoder, a seeded PRNG and temporary directories.
 */

import { rmSync } from "node:fs";

import { tempDirSync } from "./temp.js";

/** A NAR token: a string, or raw file contents. */
export type Token = string | Buffer;

/** Encodes tokens the way the NAR format defines them, independently of nar-dump.ts. */
export function encodeNar(tokens: readonly Token[]): Buffer {
  const parts: Buffer[] = [];
  for (const token of tokens) {
    const bytes = typeof token === "string" ? Buffer.from(token, "utf8") : token;
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(BigInt(bytes.length));
    parts.push(head, bytes, Buffer.alloc((8 - (bytes.length % 8)) % 8));
  }
  return Buffer.concat(parts);
}

/** Tokens of a regular file node. */
export function fileNode(contents: Token, executable = false): Token[] {
  return [
    "(",
    "type",
    "regular",
    ...(executable ? ["executable", ""] : []),
    "contents",
    contents,
    ")",
  ];
}

/** Tokens of a directory node with entries given in order. */
export function dirNode(entries: readonly [Token, Token[]][]): Token[] {
  const out: Token[] = ["(", "type", "directory"];
  for (const [name, node] of entries) out.push("entry", "(", "name", name, "node", ...node, ")");
  out.push(")");
  return out;
}

/** Tokens of a symlink node. */
export function symlinkNode(target: Token): Token[] {
  return ["(", "type", "symlink", "target", target, ")"];
}

/** A whole NAR around a root node. */
export function nar(root: Token[]): Buffer {
  return encodeNar(["nix-archive-1", ...root]);
}

/** mulberry32: a small seeded PRNG, so failures reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random integer in [0, n). */
export function randomInt(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

/** A temporary directory for one test; remove it with `cleanup`. */
export function makeTempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = tempDirSync(prefix);
  return {
    dir,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Splits bytes into chunks of the given sizes (cycled). */
export function chunked(bytes: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  let i = 0;
  while (offset < bytes.length) {
    const size = Math.max(1, sizes[i % sizes.length] ?? 1);
    out.push(bytes.subarray(offset, offset + size));
    offset += size;
    i += 1;
  }
  return out;
}
