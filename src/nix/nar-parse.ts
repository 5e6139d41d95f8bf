/**
 * A streaming NAR parser: bytes in, events out, nothing buffered beyond one
 * token. It checks what Nix's `parseDump` checks and more: magic, tags,
 * zero padding, sorted and unique entry names, names that could escape a
 * directory, impossible lengths, truncation and trailing bytes.
 */

import { OgygiaError } from "../core/index.js";
import { MAX_DEPTH, MAX_NAME_BYTES, MAX_TARGET_BYTES, NAR_MAGIC, padding } from "./nar-format.js";

export type NarEvent =
  /** A directory; `path` is relative to the NAR root ("" for the root), `/`-joined raw bytes. */
  | { type: "directory"; path: Buffer }
  | { type: "directory-end"; path: Buffer }
  /** A regular file; its contents follow as `data` events, then `file-end`. */
  | { type: "file"; path: Buffer; executable: boolean; size: number }
  /** File bytes; a view into the input, valid only during the callback. */
  | { type: "data"; data: Buffer }
  | { type: "file-end"; path: Buffer }
  | { type: "symlink"; path: Buffer; target: Buffer };

export interface NarParser {
  /** Feeds the next bytes; events reach the handler before this returns. Throws ERR_OGYGIA_NIX_NAR. */
  write(chunk: Uint8Array): void;
  /** Declares the input complete; throws ERR_OGYGIA_NIX_NAR when the NAR is not. */
  end(): void;
  /** Bytes consumed so far. */
  readonly bytesRead: number;
  /** True once the root node has closed. */
  readonly complete: boolean;
}

export interface NarParserOptions {
  /** Named in error messages, e.g. the store path or URL the NAR came from. */
  what?: string;
  /** The NAR's announced size: larger content is rejected as soon as it is announced. */
  maxSize?: number;
}

const EMPTY = Buffer.alloc(0);
const SLASH = Buffer.from("/");
/** Longest tag Nix writes is "nix-archive-1" (13 bytes). */
const MAX_TAG_BYTES = 16;
const TWO_POW_32 = 0x100000000;

interface Frame {
  path: Buffer;
  previous: Buffer | undefined;
}

function display(path: Buffer): string {
  return path.length === 0 ? "the root" : `'${path.toString("utf8")}'`;
}

class Parser implements NarParser {
  private chunk: Buffer = EMPTY;
  private offset = 0;
  private base = 0;
  private context: Buffer = EMPTY;
  private finished = false;
  private failed = false;
  private failure: unknown;
  private readonly machine: Generator<undefined, void, undefined>;

  constructor(
    private readonly emit: (event: NarEvent) => void,
    private readonly options: NarParserOptions,
  ) {
    this.machine = this.run();
    // Run up to the first read so `write` only resumes.
    this.machine.next();
  }

  get bytesRead(): number {
    return this.base + this.offset;
  }

  get complete(): boolean {
    return this.finished;
  }

  write(input: Uint8Array): void {
    if (this.failed) throw this.failure;
    if (input.length === 0) return;
    if (this.finished) throw this.fail("unexpected bytes after the end of the archive");
    this.base += this.chunk.length;
    this.chunk = Buffer.isBuffer(input)
      ? input
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    this.offset = 0;
    try {
      const step = this.machine.next();
      if (step.done === true) {
        this.finished = true;
        if (this.offset < this.chunk.length) {
          throw this.fail("unexpected bytes after the end of the archive");
        }
      }
    } catch (err) {
      // A handler's error also ends the parse: the machine cannot resume.
      this.failed = true;
      this.failure = err;
      throw err;
    }
  }

  end(): void {
    if (this.failed) throw this.failure;
    if (!this.finished) {
      throw this.fail(`the archive is truncated (input ended inside ${display(this.context)})`);
    }
  }

  private fail(reason: string): OgygiaError {
    const what = this.options.what === undefined ? "" : ` from ${this.options.what}`;
    const error = new OgygiaError(
      "ERR_OGYGIA_NIX_NAR",
      `invalid NAR${what}: ${reason} (at byte ${this.bytesRead})`,
    );
    this.failed = true;
    this.failure = error;
    return error;
  }

  /** The next `count` bytes: a view when they sit in one chunk, else a copy. */
  private *take(count: number): Generator<undefined, Buffer, undefined> {
    if (this.chunk.length - this.offset >= count) {
      const view = this.chunk.subarray(this.offset, this.offset + count);
      this.offset += count;
      return view;
    }
    const out = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      if (this.offset === this.chunk.length) {
        yield;
        continue;
      }
      const n = Math.min(count - filled, this.chunk.length - this.offset);
      this.chunk.copy(out, filled, this.offset, this.offset + n);
      this.offset += n;
      filled += n;
    }
    return out;
  }

  private *number(what: string): Generator<undefined, number, undefined> {
    const bytes = yield* this.take(8);
    const high = bytes.readUInt32LE(4);
    if (high > 0x1fffff) throw this.fail(`${what} is impossibly large`);
    return high * TWO_POW_32 + bytes.readUInt32LE(0);
  }

  private *skipPadding(length: number): Generator<undefined, void, undefined> {
    const pad = padding(length);
    if (pad === 0) return;
    const bytes = yield* this.take(pad);
    for (const byte of bytes) if (byte !== 0) throw this.fail("non-zero padding");
  }

  /** A string token of at most `max` bytes. */
  private *string(max: number, what: string): Generator<undefined, Buffer, undefined> {
    const length = yield* this.number(`the length of ${what}`);
    if (length > max) throw this.fail(`${what} is ${length} bytes long, more than ${max}`);
    const bytes = yield* this.take(length);
    yield* this.skipPadding(length);
    return bytes;
  }

  private *tag(what: string): Generator<undefined, string, undefined> {
    return (yield* this.string(MAX_TAG_BYTES, what)).toString("latin1");
  }

  private *expect(tag: string): Generator<undefined, void, undefined> {
    const got = yield* this.tag(`the '${tag}' tag`);
    if (got !== tag) throw this.fail(`expected '${tag}', got '${got}'`);
  }

  private checkName(name: Buffer, frame: Frame): void {
    const shown = `'${name.toString("utf8")}' in ${display(frame.path)}`;
    if (name.length === 0) throw this.fail(`empty entry name in ${display(frame.path)}`);
    if ((name.length === 1 || name.length === 2) && name.every((b) => b === 0x2e)) {
      throw this.fail(`entry name ${shown} is not allowed`);
    }
    if (name.includes(0x2f)) throw this.fail(`entry name ${shown} contains '/'`);
    if (name.includes(0)) throw this.fail(`entry name ${shown} contains a NUL byte`);
    if (frame.previous !== undefined) {
      const order = Buffer.compare(frame.previous, name);
      if (order === 0) throw this.fail(`duplicate entry ${shown}`);
      if (order > 0) {
        throw this.fail(
          `entries are not sorted: ${shown} comes after '${frame.previous.toString("utf8")}'`,
        );
      }
    }
  }

  private *run(): Generator<undefined, void, undefined> {
    yield;
    const magic = yield* this.take(8);
    const magicLength = magic.readUInt32LE(0) + magic.readUInt32LE(4) * TWO_POW_32;
    if (magicLength !== NAR_MAGIC.length) throw this.fail("not a Nix archive (bad magic)");
    const magicText = yield* this.take(NAR_MAGIC.length);
    if (magicText.toString("latin1") !== NAR_MAGIC) {
      throw this.fail("not a Nix archive (bad magic)");
    }
    yield* this.skipPadding(NAR_MAGIC.length);

    const stack: Frame[] = [];
    let path = EMPTY;
    for (;;) {
      // A node at `path`.
      this.context = path;
      yield* this.expect("(");
      yield* this.expect("type");
      const type = yield* this.tag("the node type");
      let closeEntry: boolean;
      if (type === "directory") {
        if (stack.length >= MAX_DEPTH) {
          throw this.fail(`directories nest deeper than ${MAX_DEPTH} levels`);
        }
        this.emit({ type: "directory", path });
        stack.push({ path, previous: undefined });
        closeEntry = false;
      } else if (type === "regular") {
        let tag = yield* this.tag("a file tag");
        let executable = false;
        if (tag === "executable") {
          const marker = yield* this.string(MAX_TAG_BYTES, "the executable marker");
          if (marker.length !== 0) throw this.fail("the executable marker is not empty");
          executable = true;
          tag = yield* this.tag("a file tag");
        }
        if (tag !== "contents") throw this.fail(`expected 'contents', got '${tag}'`);
        const size = yield* this.number(`the size of ${display(path)}`);
        const maxSize = this.options.maxSize;
        if (maxSize !== undefined && this.bytesRead + size > maxSize) {
          throw this.fail(
            `${display(path)} claims ${size} bytes, more than the NAR's ${maxSize} bytes hold`,
          );
        }
        this.emit({ type: "file", path, executable, size });
        let left = size;
        while (left > 0) {
          if (this.offset === this.chunk.length) {
            yield;
            continue;
          }
          const n = Math.min(left, this.chunk.length - this.offset);
          this.emit({ type: "data", data: this.chunk.subarray(this.offset, this.offset + n) });
          this.offset += n;
          left -= n;
        }
        yield* this.skipPadding(size);
        yield* this.expect(")");
        this.emit({ type: "file-end", path });
        closeEntry = stack.length > 0;
      } else if (type === "symlink") {
        yield* this.expect("target");
        const target = yield* this.string(MAX_TARGET_BYTES, "a symlink target");
        if (target.length === 0) throw this.fail(`symlink ${display(path)} has an empty target`);
        if (target.includes(0)) throw this.fail(`symlink ${display(path)} target contains NUL`);
        yield* this.expect(")");
        this.emit({ type: "symlink", path, target: Buffer.from(target) });
        closeEntry = stack.length > 0;
      } else {
        throw this.fail(`unknown node type '${type}'`);
      }

      // Find the next node: the next entry of the innermost open directory.
      for (;;) {
        const frame = stack.at(-1);
        if (frame === undefined) return;
        this.context = frame.path;
        if (closeEntry) yield* this.expect(")");
        const tag = yield* this.tag("a directory tag");
        if (tag === ")") {
          stack.pop();
          this.emit({ type: "directory-end", path: frame.path });
          closeEntry = stack.length > 0;
          continue;
        }
        if (tag !== "entry") throw this.fail(`expected 'entry' or ')', got '${tag}'`);
        yield* this.expect("(");
        yield* this.expect("name");
        const name = Buffer.from(yield* this.string(MAX_NAME_BYTES, "an entry name"));
        this.checkName(name, frame);
        frame.previous = name;
        yield* this.expect("node");
        path = frame.path.length === 0 ? name : Buffer.concat([frame.path, SLASH, name]);
        break;
      }
    }
  }
}

/** A streaming NAR parser that reports to `onEvent` (see NarEvent). */
export function createNarParser(
  onEvent: (event: NarEvent) => void,
  options: NarParserOptions = {},
): NarParser {
  return new Parser(onEvent, options);
}

/** Parses a complete NAR from a byte stream, for checking or inspecting it. */
export async function parseNar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  onEvent: (event: NarEvent) => void,
  options: NarParserOptions = {},
): Promise<{ narSize: number }> {
  const parser = createNarParser(onEvent, options);
  for await (const chunk of source) parser.write(chunk);
  parser.end();
  return { narSize: parser.bytesRead };
}
