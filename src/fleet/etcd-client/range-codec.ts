/**
 * A hand-written codec for the one hot message pair, `RangeRequest` and
 * `RangeResponse`: `ogygia status` reads 30,000 keys at once, and the
 * generated reflection-based codec (like importing all of `rpc.proto`'s
 * descriptors) costs more than the request itself. `range-codec.test.ts`
 * checks it against the generated code.
 */

/** `mvccpb.KeyValue`, with `key` and `value` as views into the response. */
export interface RangeKeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: bigint;
  modRevision: bigint;
  version: bigint;
  lease: bigint;
}

/** `etcdserverpb.RangeResponse` (the header reduced to its revision). */
export interface RangeResult {
  revision: bigint;
  kvs: RangeKeyValue[];
  more: boolean;
  count: bigint;
}

/** The fields of `etcdserverpb.RangeRequest` this client sends. */
export interface RangeParams {
  key: Uint8Array;
  rangeEnd?: Uint8Array | undefined;
  limit?: bigint | undefined;
  revision?: bigint | undefined;
  keysOnly?: boolean | undefined;
  countOnly?: boolean | undefined;
}

function varintLength(value: bigint): number {
  let n = 1;
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

class Writer {
  readonly bytes: Buffer;
  private pos = 0;

  constructor(size: number) {
    this.bytes = Buffer.allocUnsafe(size);
  }

  varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    while (v >= 0x80n) {
      this.bytes[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.bytes[this.pos++] = Number(v);
  }

  raw(data: Uint8Array): void {
    this.bytes.set(data, this.pos);
    this.pos += data.length;
  }
}

/** Encodes a `RangeRequest` as protobuf would (fields in number order, defaults left out). */
export function encodeRangeRequest(params: RangeParams): Uint8Array {
  const fields: [number, Uint8Array | bigint][] = [];
  if (params.key.length > 0) fields.push([1, params.key]);
  if (params.rangeEnd && params.rangeEnd.length > 0) fields.push([2, params.rangeEnd]);
  if (params.limit) fields.push([3, params.limit]);
  if (params.revision) fields.push([4, params.revision]);
  if (params.keysOnly) fields.push([8, 1n]);
  if (params.countOnly) fields.push([9, 1n]);
  let size = 0;
  for (const [, value] of fields) {
    size +=
      1 +
      (typeof value === "bigint"
        ? varintLength(value)
        : varintLength(BigInt(value.length)) + value.length);
  }
  const writer = new Writer(size);
  for (const [number, value] of fields) {
    if (typeof value === "bigint") {
      writer.varint(BigInt(number << 3));
      writer.varint(value);
    } else {
      writer.varint(BigInt((number << 3) | 2));
      writer.varint(BigInt(value.length));
      writer.raw(value);
    }
  }
  return writer.bytes;
}

/** Thrown for bytes that are not a well-formed message of the expected type. */
export class DecodeError extends Error {
  constructor(what: string) {
    super(`malformed etcd response: ${what}`);
    this.name = "DecodeError";
  }
}

/** Reads protobuf wire format from one buffer; lengths are checked against its end. */
class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint below 2^53 as a number (tags, lengths). */
  uint(): number {
    const buf = this.buf;
    let byte = buf[this.pos++] ?? 0;
    if (byte < 0x80) return byte;
    let value = byte & 0x7f;
    let scale = 0x80;
    for (let i = 1; i < 10; i++) {
      if (this.pos >= this.end) throw new DecodeError("truncated varint");
      byte = buf[this.pos++] ?? 0;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
    }
    throw new DecodeError("varint longer than 10 bytes");
  }

  /** An int64 varint as a bigint (negative values come as 10-byte two's complement). */
  int64(): bigint {
    const start = this.pos;
    const small = this.uint();
    if (this.pos - start < 8) return BigInt(small);
    // Past 2^49 a number may have lost precision: read it again exactly.
    let value = 0n;
    let shift = 0n;
    for (let p = start; p < this.pos; p++) {
      value |= BigInt((this.buf[p] ?? 0) & 0x7f) << shift;
      shift += 7n;
    }
    return BigInt.asIntN(64, value);
  }

  /** The [start, end) of a length-delimited field's bytes. */
  delimited(): number {
    const length = this.uint();
    const end = this.pos + length;
    if (end > this.end) throw new DecodeError("a field runs past its message");
    return end;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.uint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.pos = this.delimited();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw new DecodeError(`wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new DecodeError("a field runs past its message");
  }
}

/**
 * One `KeyValue` in [reader.pos, end). The common shapes (one-byte tags and
 * lengths, revisions below 2^28) are read inline: a 10,000-host range holds
 * 30,000 of them.
 */
function decodeKeyValue(reader: Reader, end: number): RangeKeyValue {
  const buf = reader.buf;
  let key: Buffer = EMPTY;
  let value: Buffer = EMPTY;
  let createRevision = 0n;
  let modRevision = 0n;
  let version = 0n;
  let lease = 0n;
  let pos = reader.pos;
  while (pos < end) {
    const tag = buf[pos] ?? 0;
    if (tag === 0x0a || tag === 0x2a) {
      let length = buf[pos + 1] ?? 0;
      let from = pos + 2;
      if (length >= 0x80) {
        reader.pos = pos + 1;
        length = reader.uint();
        from = reader.pos;
      }
      const stop = from + length;
      if (stop > end) throw new DecodeError("a field runs past its key-value");
      if (tag === 0x0a) key = buf.subarray(from, stop);
      else value = buf.subarray(from, stop);
      pos = stop;
      continue;
    }
    reader.pos = pos + 1;
    switch (tag) {
      case 0x10:
        createRevision = reader.int64();
        break;
      case 0x18:
        modRevision = reader.int64();
        break;
      case 0x20:
        version = reader.int64();
        break;
      case 0x30:
        lease = reader.int64();
        break;
      default:
        reader.pos = pos;
        reader.skip(reader.uint() & 7);
    }
    pos = reader.pos;
  }
  if (pos !== end) throw new DecodeError("a key-value runs past its end");
  reader.pos = pos;
  return { key, value, createRevision, modRevision, version, lease };
}

/** A `ResponseHeader` at the reader: only its revision (field 3) matters here. */
function headerRevision(reader: Reader): bigint {
  const end = reader.delimited();
  let revision = 0n;
  while (reader.pos < end) {
    const inner = reader.uint();
    if (inner === 0x18) revision = reader.int64();
    else reader.skip(inner & 7);
  }
  if (reader.pos !== end) throw new DecodeError("the header runs past its end");
  return revision;
}

const EMPTY = Buffer.alloc(0);

/** Receives one key-value of a range as byte offsets into the response. */
export type RangeVisitor = (
  buf: Buffer,
  keyStart: number,
  keyEnd: number,
  valueStart: number,
  valueEnd: number,
) => void;

/** What a visited range says besides its key-values. */
export interface RangeSummary {
  revision: bigint;
  more: boolean;
}

/**
 * Decodes a `RangeResponse` without building a key-value object per entry:
 * each key and value goes to `visit` as offsets into `buf`, and the
 * revisions, version and lease of each entry are skipped unread. For a
 * caller that only needs keys and values (a fleet read), this saves four
 * bigints, two buffers and an object per key.
 */
export function visitRangeResponse(buf: Buffer, visit: RangeVisitor): RangeSummary {
  const reader = new Reader(buf, 0, buf.length);
  const summary: RangeSummary = { revision: 0n, more: false };
  const length = buf.length;
  while (reader.pos < length) {
    // The key-values (field 2) come one after another: they are read here,
    // in one loop with the common one-byte lengths inline, as this runs
    // once per key (30,000 times for 10,000 hosts) in code not yet optimised.
    let pos = reader.pos;
    while (buf[pos] === 0x12) {
      let size = buf[pos + 1] ?? 0;
      let start = pos + 2;
      if (size >= 0x80) {
        reader.pos = pos + 1;
        size = reader.uint();
        start = reader.pos;
      }
      const end = start + size;
      if (end > length) throw new DecodeError("a field runs past its message");
      pos = visitKeyValue(reader, start, end, visit);
    }
    reader.pos = pos;
    if (pos >= length) break;
    const tag = reader.uint();
    switch (tag) {
      case 0x0a:
        summary.revision = headerRevision(reader);
        break;
      case 0x18:
        summary.more = reader.uint() !== 0;
        break;
      default:
        reader.skip(tag & 7);
    }
  }
  if (reader.pos !== length) throw new DecodeError("the message runs past its end");
  return summary;
}

/** Visits the key-value in [start, end) of the reader's buffer; returns `end`. */
function visitKeyValue(reader: Reader, start: number, end: number, visit: RangeVisitor): number {
  const buf = reader.buf;
  let keyStart = 0;
  let keyEnd = 0;
  let valueStart = 0;
  let valueEnd = 0;
  let pos = start;
  while (pos < end) {
    const tag = buf[pos] ?? 0;
    if (tag === 0x0a || tag === 0x2a) {
      let length = buf[pos + 1] ?? 0;
      let from = pos + 2;
      if (length >= 0x80) {
        reader.pos = pos + 1;
        length = reader.uint();
        from = reader.pos;
      }
      const stop = from + length;
      if (stop > end) throw new DecodeError("a field runs past its key-value");
      if (tag === 0x0a) {
        keyStart = from;
        keyEnd = stop;
      } else {
        valueStart = from;
        valueEnd = stop;
      }
      pos = stop;
    } else if ((tag & 7) === 0 && tag < 0x80) {
      // A varint (revisions, version, lease): skip to its last byte.
      const first = pos + 1;
      pos = first;
      while ((buf[pos] ?? 0) >= 0x80 && pos < end) pos += 1;
      pos += 1;
      if (pos - first > 10) throw new DecodeError("varint longer than 10 bytes");
    } else {
      reader.pos = pos;
      reader.skip(reader.uint() & 7);
      pos = reader.pos;
    }
  }
  if (pos !== end) throw new DecodeError("a key-value runs past its end");
  visit(buf, keyStart, keyEnd, valueStart, valueEnd);
  return end;
}

/** Decodes a `RangeResponse`; keys and values stay views into `buf`. */
export function decodeRangeResponse(buf: Buffer): RangeResult {
  const reader = new Reader(buf, 0, buf.length);
  const result: RangeResult = { revision: 0n, kvs: [], more: false, count: 0n };
  while (reader.pos < buf.length) {
    const tag = reader.uint();
    switch (tag) {
      case 0x0a:
        result.revision = headerRevision(reader);
        break;
      case 0x12: {
        const end = reader.delimited();
        result.kvs.push(decodeKeyValue(reader, end));
        break;
      }
      case 0x18:
        result.more = reader.uint() !== 0;
        break;
      case 0x20:
        result.count = reader.int64();
        break;
      default:
        reader.skip(tag & 7);
    }
  }
  if (reader.pos !== buf.length) throw new DecodeError("the message runs past its end");
  return result;
}
