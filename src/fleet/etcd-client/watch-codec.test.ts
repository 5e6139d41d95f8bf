import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";

import { fromBinary } from "./codec.js";
import { Event_EventType, EventSchema, KeyValueSchema } from "./kv_pb.js";
import { DecodeError } from "./range-codec.js";
import { ResponseHeaderSchema, WatchResponseSchema } from "./rpc_pb.js";
import { decodeWatchResponse, type WatchResult } from "./watch-codec.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** What the generated decoder makes of `bytes`, in the hand-written one's shape. */
function generated(bytes: Uint8Array): WatchResult {
  const message = fromBinary(WatchResponseSchema, bytes);
  return {
    revision: message.header?.revision ?? 0n,
    created: message.created,
    canceled: message.canceled,
    compactRevision: message.compactRevision,
    cancelReason: message.cancelReason,
    changes: message.events.flatMap((event) =>
      event.kv
        ? [
            {
              deleted: event.type === Event_EventType.Delete,
              key: Buffer.from(event.kv.key),
              value: Buffer.from(event.kv.value),
              modRevision: event.kv.modRevision,
            },
          ]
        : [],
    ),
  };
}

/** The hand-written decoder's result with its views copied, for `toEqual`. */
function ours(bytes: Uint8Array): WatchResult {
  const result = decodeWatchResponse(Buffer.from(bytes));
  return {
    ...result,
    changes: result.changes.map((c) => ({
      ...c,
      key: Buffer.from(c.key),
      value: Buffer.from(c.value),
    })),
  };
}

/** A deterministic pseudo-random source (xorshift32), so a failure can be replayed. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

describe("the hand-written WatchResponse decoder", () => {
  it("decodes what the generated code encodes: puts, deletes, header, large and negative int64s", () => {
    const bytes = toBinary(
      WatchResponseSchema,
      create(WatchResponseSchema, {
        header: create(ResponseHeaderSchema, {
          clusterId: 2n ** 64n - 1n,
          memberId: 5n,
          revision: 2n ** 53n + 3n,
          raftTerm: 9n,
        }),
        watchId: -1n,
        created: true,
        fragment: true,
        events: [
          create(EventSchema, {
            type: Event_EventType.Put,
            kv: create(KeyValueSchema, {
              key: text("/ns/web01/update_state"),
              value: text("confirmed"),
              createRevision: 4n,
              modRevision: 7n,
              version: 2n,
              lease: 7_587_870_000_000_000_001n,
            }),
            prevKv: create(KeyValueSchema, { key: text("ignored"), value: text("old") }),
          }),
          create(EventSchema, {
            type: Event_EventType.Delete,
            kv: create(KeyValueSchema, {
              key: text("/ns/web02/alive"),
              modRevision: 2n ** 63n - 1n,
            }),
          }),
          create(EventSchema, {
            kv: create(KeyValueSchema, { key: text("/ns/é"), value: new Uint8Array(300).fill(1) }),
          }),
          create(EventSchema, {
            kv: create(KeyValueSchema, { key: text("/ns/neg"), modRevision: -5n }),
          }),
        ],
      }),
    );
    const result = ours(bytes);
    expect(result).toEqual(generated(bytes));
    expect(result.revision).toBe(2n ** 53n + 3n);
    expect(result.changes.map((c) => [c.deleted, c.modRevision])).toEqual([
      [false, 7n],
      [true, 2n ** 63n - 1n],
      [false, 0n],
      [false, -5n],
    ]);
  });

  it("decodes a cancellation with its reason and compact revision", () => {
    const bytes = toBinary(
      WatchResponseSchema,
      create(WatchResponseSchema, {
        canceled: true,
        compactRevision: 1234n,
        cancelReason: "mvcc: required revision has been compacted",
      }),
    );
    expect(ours(bytes)).toEqual(generated(bytes));
    expect(decodeWatchResponse(Buffer.from(bytes)).canceled).toBe(true);
  });

  it("decodes an empty message (a progress notification without a header) as the defaults", () => {
    expect(ours(new Uint8Array())).toEqual(generated(new Uint8Array()));
  });

  it("agrees with the generated decoder on random messages", () => {
    const next = random(0x5eed);
    const int64 = (): bigint => {
      const r = next();
      if (r < 0.5) return BigInt(Math.floor(next() * 1000));
      if (r < 0.8) return BigInt(Math.floor(next() * 2 ** 53));
      if (r < 0.9) return -BigInt(Math.floor(next() * 2 ** 40));
      return BigInt.asIntN(64, BigInt(Math.floor(next() * 2 ** 32)) << 31n);
    };
    const bytesOf = (max: number): Uint8Array =>
      Uint8Array.from({ length: Math.floor(next() * max) }, () => Math.floor(next() * 256));
    for (let i = 0; i < 300; i++) {
      const events = Array.from({ length: Math.floor(next() * 6) }, () =>
        create(EventSchema, {
          type: next() < 0.3 ? Event_EventType.Delete : Event_EventType.Put,
          ...(next() < 0.95
            ? {
                kv: create(KeyValueSchema, {
                  key: bytesOf(40),
                  value: bytesOf(next() < 0.1 ? 400 : 30),
                  createRevision: int64(),
                  modRevision: int64(),
                  version: int64(),
                  lease: int64(),
                }),
              }
            : {}),
          ...(next() < 0.2 ? { prevKv: create(KeyValueSchema, { key: bytesOf(10) }) } : {}),
        }),
      );
      const bytes = toBinary(
        WatchResponseSchema,
        create(WatchResponseSchema, {
          ...(next() < 0.9
            ? {
                header: create(ResponseHeaderSchema, {
                  revision: int64(),
                  raftTerm: BigInt.asUintN(64, int64()),
                }),
              }
            : {}),
          watchId: int64(),
          created: next() < 0.1,
          canceled: next() < 0.1,
          compactRevision: next() < 0.1 ? int64() : 0n,
          cancelReason: next() < 0.1 ? "reason ü" : "",
          events,
        }),
      );
      expect(ours(bytes)).toEqual(generated(bytes));
      // Every cut of a message is either rejected or read as the generated code reads it.
      const cut = Math.floor(next() * bytes.length);
      let want: WatchResult | Error;
      try {
        want = generated(bytes.subarray(0, cut));
      } catch (err) {
        want = err as Error;
      }
      if (want instanceof Error) {
        expect(() => decodeWatchResponse(Buffer.from(bytes.subarray(0, cut)))).toThrow(DecodeError);
      } else {
        expect(ours(bytes.subarray(0, cut))).toEqual(want);
      }
    }
  });

  it("rejects a field that runs past its message, and a varint longer than 10 bytes", () => {
    const bytes = toBinary(
      WatchResponseSchema,
      create(WatchResponseSchema, {
        events: [create(EventSchema, { kv: create(KeyValueSchema, { key: text("abc") }) })],
      }),
    );
    expect(() => decodeWatchResponse(Buffer.from(bytes.subarray(0, bytes.length - 1)))).toThrow(
      DecodeError,
    );
    expect(() =>
      decodeWatchResponse(Buffer.from([0x28, ...new Array<number>(10).fill(0xff), 1])),
    ).toThrow(DecodeError);
  });
});
