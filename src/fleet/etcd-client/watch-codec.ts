/**
 * A hand-written decoder for `WatchResponse`, the message every agent of a
 * rollout receives for every change of the fleet: the generated
 * reflection-based decoder built a message object per event, key-value and
 * header, with every field set, and parsed each int64 through a BigInt; it
 * was the agents' largest cost after spawning programs. This one reads only
 * what the client uses, keys and values as views into the message, and
 * 64-bit varints as two 32-bit halves. `watch-codec.test.ts` checks it
 * against the generated code on the same bytes.
 */

import { DecodeError } from "./range-codec.js";

/** One change of a watched key (`mvccpb.Event` with its `kv`; `prev_kv` is not read). */
export interface WatchChange {
  /** A deletion (an expired lease's included); else a put. */
  deleted: boolean;
  /** Views into the response's bytes. */
  key: Buffer;
  value: Buffer;
  modRevision: bigint;
}

/** `etcdserverpb.WatchResponse` as the client uses it (the header reduced to its revision). */
export interface WatchResult {
  revision: bigint;
  created: boolean;
  canceled: boolean;
  compactRevision: bigint;
  cancelReason: string;
  /** The events that carry a key-value (etcd sends no other). */
  changes: WatchChange[];
}

const EMPTY = Buffer.alloc(0);
const TWO_32 = 0x1_0000_0000;

/**
 * The two 32-bit halves of the last varint read by `varint` (unsigned):
 * module state rather than a returned pair, so that reading one allocates
 * nothing.
 */
let lo = 0;
let hi = 0;

/** Reads the varint at `pos` into `lo`/`hi`; returns the position after it. */
function varint(buf: Buffer, pos: number, end: number): number {
  let low = 0;
  let high = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) throw new DecodeError("truncated varint");
    const byte = buf[pos++] ?? 0;
    low |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      lo = low >>> 0;
      hi = 0;
      return pos;
    }
  }
  // The fifth byte: four bits for the low half, three for the high one.
  if (pos >= end) throw new DecodeError("truncated varint");
  let byte = buf[pos++] ?? 0;
  low |= (byte & 0x0f) << 28;
  high = (byte & 0x70) >> 4;
  if (byte < 0x80) {
    lo = low >>> 0;
    hi = high;
    return pos;
  }
  for (let shift = 3; shift < 32; shift += 7) {
    if (pos >= end) throw new DecodeError("truncated varint");
    byte = buf[pos++] ?? 0;
    high |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      lo = low >>> 0;
      hi = high >>> 0;
      return pos;
    }
  }
  throw new DecodeError("varint longer than 10 bytes");
}

/** Reads a field's tag at `pos` into `lo`; returns the position after it. */
function fieldTag(buf: Buffer, pos: number, end: number): number {
  const next = varint(buf, pos, end);
  if (hi !== 0) throw new DecodeError("field tag");
  return next;
}

/** The last varint read, as an int64. */
function int64(): bigint {
  if (hi === 0) return BigInt(lo);
  // Exact as a number below 2^53 (revisions in practice): one conversion.
  if (hi < 0x20_0000) return BigInt(hi * TWO_32 + lo);
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
}

/** The end of the length-delimited field whose length is at `pos`; `lo` is its start. */
function delimited(buf: Buffer, pos: number, end: number): number {
  const start = varint(buf, pos, end);
  if (hi !== 0 || start + lo > end) throw new DecodeError("a field runs past its message");
  const stop = start + lo;
  lo = start;
  return stop;
}

/** Skips the field of `wireType` at `pos` (its tag read); returns the position after it. */
function skip(buf: Buffer, pos: number, end: number, wireType: number): number {
  let next: number;
  switch (wireType) {
    case 0:
      return varint(buf, pos, end);
    case 1:
      next = pos + 8;
      break;
    case 2:
      return delimited(buf, pos, end);
    case 5:
      next = pos + 4;
      break;
    default:
      throw new DecodeError(`wire type ${wireType}`);
  }
  if (next > end) throw new DecodeError("a field runs past its message");
  return next;
}

/** A `ResponseHeader` in [pos, end) merged over one with `revision`: its revision (field 3). */
function headerRevision(buf: Buffer, pos: number, end: number, revision: bigint): bigint {
  while (pos < end) {
    pos = fieldTag(buf, pos, end);
    const tag = lo;
    if (tag === 0x18) {
      pos = varint(buf, pos, end);
      revision = int64();
    } else {
      pos = skip(buf, pos, end, tag & 7);
    }
  }
  return revision;
}

/** The change being read: a `kv` field may come twice, and is then merged, as protobuf does. */
interface Draft {
  key: Buffer;
  value: Buffer;
  modRevision: bigint;
}

/** A `KeyValue` in [pos, end), merged into `draft`: key, value and mod revision. */
function readKeyValue(buf: Buffer, pos: number, end: number, draft: Draft): void {
  while (pos < end) {
    pos = fieldTag(buf, pos, end);
    const tag = lo;
    switch (tag) {
      case 0x0a:
      case 0x2a: {
        const stop = delimited(buf, pos, end);
        const bytes = buf.subarray(lo, stop);
        if (tag === 0x0a) draft.key = bytes;
        else draft.value = bytes;
        pos = stop;
        break;
      }
      case 0x18:
        pos = varint(buf, pos, end);
        draft.modRevision = int64();
        break;
      default:
        pos = skip(buf, pos, end, tag & 7);
    }
  }
}

/** An `Event` in [pos, end), or null when it carries no key-value. */
function readEvent(buf: Buffer, pos: number, end: number): WatchChange | null {
  let deleted = false;
  let draft: Draft | null = null;
  while (pos < end) {
    pos = fieldTag(buf, pos, end);
    const tag = lo;
    if (tag === 0x08) {
      pos = varint(buf, pos, end);
      deleted = lo === 1 && hi === 0;
    } else if (tag === 0x12) {
      const stop = delimited(buf, pos, end);
      draft ??= { key: EMPTY, value: EMPTY, modRevision: 0n };
      readKeyValue(buf, lo, stop, draft);
      pos = stop;
    } else {
      pos = skip(buf, pos, end, tag & 7);
    }
  }
  return draft && { deleted, key: draft.key, value: draft.value, modRevision: draft.modRevision };
}

/** Decodes a `WatchResponse`; keys and values stay views into `buf`. */
export function decodeWatchResponse(buf: Buffer): WatchResult {
  const result: WatchResult = {
    revision: 0n,
    created: false,
    canceled: false,
    compactRevision: 0n,
    cancelReason: "",
    changes: [],
  };
  const end = buf.length;
  let pos = 0;
  while (pos < end) {
    pos = fieldTag(buf, pos, end);
    const tag = lo;
    switch (tag) {
      case 0x5a: {
        const stop = delimited(buf, pos, end);
        const change = readEvent(buf, lo, stop);
        if (change) result.changes.push(change);
        pos = stop;
        break;
      }
      case 0x0a: {
        const stop = delimited(buf, pos, end);
        result.revision = headerRevision(buf, lo, stop, result.revision);
        pos = stop;
        break;
      }
      case 0x18:
        pos = varint(buf, pos, end);
        result.created = (lo | hi) !== 0;
        break;
      case 0x20:
        pos = varint(buf, pos, end);
        result.canceled = (lo | hi) !== 0;
        break;
      case 0x28:
        pos = varint(buf, pos, end);
        result.compactRevision = int64();
        break;
      case 0x32: {
        const stop = delimited(buf, pos, end);
        result.cancelReason = buf.toString("utf8", lo, stop);
        pos = stop;
        break;
      }
      default:
        pos = skip(buf, pos, end, tag & 7);
    }
  }
  return result;
}
