import { describe, expect, it } from "vitest";

import { ZkServerError } from "./zookeeper-errors.js";
import {
  decodeMultiRead,
  encodeMultiRead,
  isMultiReadUnsupported,
  splitByRequestSize,
} from "./zookeeper-wire.js";

const GET_DATA = 4;
const GET_CHILDREN = 8;

/** Builds a `multiRead` answer body the way ZooKeeper's `MultiResponse.serialize` writes it. */
class Body {
  private readonly parts: Buffer[] = [];
  private int(value: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(value);
    this.parts.push(b);
    return this;
  }
  private header(type: number, done: boolean, err: number): this {
    this.int(type);
    this.parts.push(Buffer.from([done ? 1 : 0]));
    return this.int(err);
  }
  private string(text: string): this {
    const b = Buffer.from(text);
    this.int(b.length);
    this.parts.push(b);
    return this;
  }
  children(names: string[]): this {
    this.header(GET_CHILDREN, false, 0).int(names.length);
    for (const name of names) this.string(name);
    return this;
  }
  data(value: string | null): this {
    this.header(GET_DATA, false, 0);
    if (value === null) this.int(-1);
    else this.string(value);
    this.parts.push(Buffer.alloc(68, 7)); // the stat
    return this;
  }
  error(code: number): this {
    return this.header(-1, false, code).int(code);
  }
  done(): Buffer {
    this.header(-1, true, -1);
    return Buffer.concat(this.parts);
  }
}

describe("encodeMultiRead", () => {
  it("frames the ops as ZooKeeper's MultiOperationRecord, ending with a done header", () => {
    const buf = encodeMultiRead(7, GET_DATA, ["/a", "/é"]);
    const expected = Buffer.concat([
      Buffer.from([0, 0, 0, 7]), // xid
      Buffer.from([0, 0, 0, 22]), // multiRead
      Buffer.from([0, 0, 0, 4, 0, 0xff, 0xff, 0xff, 0xff]), // getData, not done, err -1
      Buffer.from([0, 0, 0, 2]),
      Buffer.from("/a"),
      Buffer.from([0]), // no watch
      Buffer.from([0, 0, 0, 4, 0, 0xff, 0xff, 0xff, 0xff]),
      Buffer.from([0, 0, 0, 3]), // UTF-8 bytes, not characters
      Buffer.from("/é"),
      Buffer.from([0]),
      Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]), // done
    ]);
    expect(buf.readInt32BE(0)).toBe(buf.length - 4);
    expect(buf.subarray(4)).toEqual(expected);
  });
});

describe("decodeMultiRead", () => {
  it("gives children and data in op order, a missing node as null", () => {
    const children = decodeMultiRead(
      new Body().children(["current", "booted"]).error(-101).children([]).done(),
      GET_CHILDREN,
      ["/n/a", "/n/b", "/n/c"],
    );
    expect(children).toEqual([["current", "booted"], null, []]);
    const data = decodeMultiRead(new Body().data("rev").error(-101).data(null).done(), GET_DATA, [
      "/n/a/current",
      "/n/a/booted",
      "/n/a/alive",
    ]);
    expect(data.map((d) => d?.toString() ?? null)).toEqual(["rev", null, ""]);
  });

  it("throws the op's error, naming its path, for anything but a missing node", () => {
    const body = new Body().data("x").error(-102).done();
    let caught: unknown;
    try {
      decodeMultiRead(body, GET_DATA, ["/n/a/current", "/n/b/current"]);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ZkServerError);
    expect((caught as ZkServerError).code).toBe(-102);
    expect((caught as ZkServerError).message).toBe("Exception: NO_AUTH[-102] at /n/b/current");
  });

  it("takes a bare answer (a server before 3.6) as multiRead unsupported", () => {
    let caught: unknown;
    try {
      decodeMultiRead(Buffer.alloc(0), GET_DATA, ["/a"]);
    } catch (err) {
      caught = err;
    }
    expect(isMultiReadUnsupported(caught)).toBe(true);
  });

  it("refuses answers cut short, with too many or too few results, or of another opcode", () => {
    const full = new Body().children(["current"]).done();
    expect(() => decodeMultiRead(full.subarray(0, full.length - 3), GET_CHILDREN, ["/a"])).toThrow(
      /cut short/,
    );
    expect(() => decodeMultiRead(full, GET_CHILDREN, [])).toThrow(/more results than ops/);
    expect(() => decodeMultiRead(full, GET_CHILDREN, ["/a", "/b"])).toThrow(/1 results for 2/);
    expect(() => decodeMultiRead(full, GET_DATA, ["/a"])).toThrow(/opcode 8 for an op of opcode 4/);
  });

  it("refuses a child count larger than the answer could hold", () => {
    const body = new Body().children([]).done();
    body.writeInt32BE(1_000_000, 9); // the count, after the 9-byte header
    expect(() => decodeMultiRead(body, GET_CHILDREN, ["/a"])).toThrow(/bad child count/);
  });
});

describe("splitByRequestSize", () => {
  it("keeps every request under the bound, in order, without losing a path", () => {
    const paths = Array.from({ length: 1000 }, (_, i) => `/ns/host${i}.example.com/current`);
    const runs = splitByRequestSize(paths, 4096);
    expect(runs.length).toBeGreaterThan(1);
    expect(runs.flat()).toEqual(paths);
    for (const run of runs) {
      const bytes = encodeMultiRead(1, GET_DATA, run).length;
      expect(bytes).toBeLessThanOrEqual(4096 + 25);
    }
  });

  it("sends a single path larger than the bound on its own", () => {
    expect(splitByRequestSize(["/a", "/".repeat(100), "/b"], 50)).toEqual([
      ["/a"],
      ["/".repeat(100)],
      ["/b"],
    ]);
  });
});
