/**
 * NAR listings: the JSON Nix writes beside a NAR in a binary cache
 * (`<hash>.ls`, `write-nar-listing = true`), version 1. Byte for byte what
 * Nix 2.8 writes (`listNar` through its JSON writer): no spaces, keys in
 * Nix's order (`type`, `size`, `executable`, `narOffset`; `entries` sorted
 * bytewise, as in the NAR), names and targets as their raw bytes with only
 * `"`, `\`, newline, return, tab and other control bytes escaped.
 *
 * A listing comes from a tree on disk (`narListingOfPath`: `lstat` and
 * `readdir` only, never a file's contents; the NAR offsets follow from the
 * sizes) or from a NAR (`narListingFromNar`, streamed through the parser).
 */

import { lstatSync, readdirSync, readlinkSync } from "node:fs";

import { OgygiaError, hasErrorCode } from "../core/index.js";
import { padding, tokenSize } from "./nar-format.js";
import { createNarParser } from "./nar-parse.js";

/** One node of a listing. Names are latin1 strings (one char per byte), so they sort bytewise. */
export type NarListingNode =
  | { type: "regular"; size: number; executable: boolean; narOffset: number }
  | { type: "directory"; entries: [name: string, node: NarListingNode][] }
  | { type: "symlink"; target: Buffer };

/** Bytes of `nix-archive-1` as a token. */
const MAGIC_SIZE = tokenSize(13);
/** `(` `type` `<kind>` for each kind, then what follows `contents`/`target`/entries. */
const OPEN = tokenSize(1) + tokenSize(4);
const REGULAR = tokenSize(7);
const EXECUTABLE = tokenSize(10) + tokenSize(0);
const CONTENTS = tokenSize(8);
const CLOSE = tokenSize(1);
const DIRECTORY = tokenSize(9);
const SYMLINK = tokenSize(7) + tokenSize(6);
/** `entry` `(` `name` ... `node`. */
const ENTRY_HEAD = tokenSize(5) + tokenSize(1) + tokenSize(4);
const NODE = tokenSize(4);

function listingError(what: string, reason: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_NAR", `cannot list ${what}: ${reason}`, { cause });
}

/** Bytewise order of latin1 names. */
function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The listing of the tree at `file` (a store path's physical location), as
 * it would be listed from its NAR. Reads metadata only. Returns the root
 * node and the NAR's size.
 */
export function narListingOfPath(file: string): { root: NarListingNode; narSize: number } {
  const walk = (path: Buffer, offset: number, depth: number): [NarListingNode, number] => {
    if (depth > 2048) throw listingError(file, "the tree is nested too deeply");
    const st = lstatSync(path);
    let at = offset + OPEN;
    if (st.isFile()) {
      const executable = (st.mode & 0o100) !== 0;
      at += REGULAR + (executable ? EXECUTABLE : 0) + CONTENTS + 8;
      const node: NarListingNode = { type: "regular", size: st.size, executable, narOffset: at };
      return [node, at + st.size + padding(st.size) + CLOSE];
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(path, { encoding: "buffer" });
      return [{ type: "symlink", target }, at + SYMLINK + tokenSize(target.length) + CLOSE];
    }
    if (st.isDirectory()) {
      at += DIRECTORY;
      const names = readdirSync(path, { encoding: "latin1" }).sort(byName);
      const entries: [string, NarListingNode][] = [];
      for (const name of names) {
        at += ENTRY_HEAD + tokenSize(name.length) + NODE;
        const child = Buffer.concat([path, Buffer.from(`/${name}`, "latin1")]);
        const [node, end] = walk(child, at, depth + 1);
        entries.push([name, node]);
        at = end + CLOSE;
      }
      return [{ type: "directory", entries }, at + CLOSE];
    }
    throw listingError(
      file,
      `${path.toString("utf8")} is not a regular file, directory or symlink`,
    );
  };
  try {
    const [root, narSize] = walk(Buffer.from(file), MAGIC_SIZE, 0);
    return { root, narSize };
  } catch (err) {
    if (err instanceof OgygiaError) throw err;
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) {
      throw listingError(file, "it vanished while being listed", err);
    }
    throw err;
  }
}

/**
 * The listing of a NAR, streamed through the strict parser (which rejects
 * anything Nix would). `what` names the NAR in errors.
 */
export async function narListingFromNar(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  what: string,
): Promise<NarListingNode> {
  const sink = narListingSink(what);
  for await (const chunk of chunks) sink.write(chunk);
  return sink.end();
}

/** A push-style listing builder over the NAR parser: `write` chunks, then `end`. */
export function narListingSink(what: string): {
  write(chunk: Uint8Array): void;
  end(): NarListingNode;
} {
  let root: NarListingNode | undefined;
  const stack: Extract<NarListingNode, { type: "directory" }>[] = [];
  const place = (path: Buffer, node: NarListingNode): void => {
    const parent = stack[stack.length - 1];
    if (parent === undefined) {
      root = node;
      return;
    }
    const slash = path.lastIndexOf(0x2f);
    parent.entries.push([path.subarray(slash + 1).toString("latin1"), node]);
  };
  const parser = createNarParser(
    (event) => {
      switch (event.type) {
        case "directory": {
          const node: NarListingNode = { type: "directory", entries: [] };
          place(event.path, node);
          stack.push(node);
          break;
        }
        case "directory-end":
          stack.pop();
          break;
        case "file":
          place(event.path, {
            type: "regular",
            size: event.size,
            executable: event.executable,
            // The parser has just read the contents' length: its position is the contents'.
            narOffset: parser.bytesRead,
          });
          break;
        case "symlink":
          place(event.path, { type: "symlink", target: Buffer.from(event.target) });
          break;
        case "data":
        case "file-end":
          break;
      }
    },
    { what },
  );
  return {
    write: (chunk) => {
      parser.write(chunk);
    },
    end() {
      parser.end();
      if (root === undefined) throw listingError(what, "the NAR has no root");
      return root;
    },
  };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** A JSON string of raw bytes, escaped as Nix 2.8's JSON writer does. */
function jsonBytes(bytes: Buffer, out: number[]): void {
  out.push(QUOTE);
  for (const byte of bytes) {
    if (byte === QUOTE || byte === BACKSLASH) out.push(BACKSLASH, byte);
    else if (byte === 0x0a) out.push(BACKSLASH, 0x6e);
    else if (byte === 0x0d) out.push(BACKSLASH, 0x72);
    else if (byte === 0x09) out.push(BACKSLASH, 0x74);
    else if (byte < 0x20) {
      for (const c of Buffer.from(`\\u${byte.toString(16).padStart(4, "0")}`, "latin1")) {
        out.push(c);
      }
    } else out.push(byte);
  }
  out.push(QUOTE);
}

function ascii(text: string, out: number[]): void {
  for (let i = 0; i < text.length; i++) out.push(text.charCodeAt(i));
}

function renderNode(node: NarListingNode, out: number[]): void {
  switch (node.type) {
    case "regular":
      ascii(`{"type":"regular","size":${node.size}`, out);
      if (node.executable) ascii(`,"executable":true`, out);
      if (node.narOffset !== 0) ascii(`,"narOffset":${node.narOffset}`, out);
      ascii("}", out);
      return;
    case "symlink":
      ascii(`{"type":"symlink","target":`, out);
      jsonBytes(node.target, out);
      ascii("}", out);
      return;
    case "directory":
      ascii(`{"type":"directory","entries":{`, out);
      node.entries.forEach(([name, child], i) => {
        if (i > 0) ascii(",", out);
        jsonBytes(Buffer.from(name, "latin1"), out);
        ascii(":", out);
        renderNode(child, out);
      });
      ascii("}}", out);
      return;
  }
}

/** The `.ls` file of a NAR whose root is `root`: `{"version":1,"root":...}`, as Nix writes it. */
export function renderNarListing(root: NarListingNode): Buffer {
  const out: number[] = [];
  ascii(`{"version":1,"root":`, out);
  renderNode(root, out);
  ascii("}", out);
  return Buffer.from(out);
}
