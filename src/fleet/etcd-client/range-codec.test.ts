import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";

import { KeyValueSchema } from "./kv_pb.js";
import {
  decodeRangeResponse,
  encodeRangeRequest,
  visitRangeResponse,
  DecodeError,
} from "./range-codec.js";
import { RangeRequestSchema, RangeResponseSchema, ResponseHeaderSchema } from "./rpc_pb.js";

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("the hand-written Range codec", () => {
  it("encodes a RangeRequest byte for byte as the generated code does", () => {
    const cases = [
      { key: text("/ns/") },
      { key: text("/ns/"), rangeEnd: text("/ns0") },
      { key: text("k"), rangeEnd: text("\0"), limit: 10n, revision: 123_456_789_012n },
      { key: text("k"), keysOnly: true, countOnly: true, revision: 2n ** 62n },
    ];
    for (const params of cases) {
      const generated = toBinary(RangeRequestSchema, create(RangeRequestSchema, params));
      expect(Buffer.from(encodeRangeRequest(params))).toEqual(Buffer.from(generated));
    }
  });

  it("decodes what the generated code encodes, large and negative int64s included", () => {
    const kvs = [
      {
        key: text("/ns/a/current"),
        value: text("x".repeat(40)),
        createRevision: 5n,
        modRevision: 7n,
        version: 2n,
      },
      {
        key: text("/ns/b/alive"),
        value: text("é"),
        modRevision: 2n ** 53n + 1n,
        lease: 7_587_870_000_000_000_001n,
      },
      {
        key: text("/ns/c/empty"),
        value: new Uint8Array(),
        createRevision: -1n,
        modRevision: 2n ** 63n - 1n,
      },
    ].map((kv) => create(KeyValueSchema, kv));
    const bytes = toBinary(
      RangeResponseSchema,
      create(RangeResponseSchema, {
        header: create(ResponseHeaderSchema, {
          clusterId: 2n ** 64n - 1n,
          revision: 99n,
          raftTerm: 3n,
        }),
        kvs,
        more: true,
        count: 3n,
      }),
    );
    const decoded = decodeRangeResponse(Buffer.from(bytes));
    expect(decoded.revision).toBe(99n);
    expect(decoded.more).toBe(true);
    expect(decoded.count).toBe(3n);
    expect(decoded.kvs).toHaveLength(3);
    // The visitor sees the same keys and values, and the same header.
    const visited: [string, string][] = [];
    const summary = visitRangeResponse(Buffer.from(bytes), (buf, ks, ke, vs, ve) => {
      visited.push([buf.toString("hex", ks, ke), buf.toString("hex", vs, ve)]);
    });
    expect(summary).toEqual({ revision: 99n, more: true });
    expect(visited).toEqual(
      kvs.map((kv) => [Buffer.from(kv.key).toString("hex"), Buffer.from(kv.value).toString("hex")]),
    );
    decoded.kvs.forEach((kv, i) => {
      const want = kvs[i];
      expect(Buffer.from(kv.key)).toEqual(Buffer.from(want?.key ?? []));
      expect(Buffer.from(kv.value)).toEqual(Buffer.from(want?.value ?? []));
      expect([kv.createRevision, kv.modRevision, kv.version, kv.lease]).toEqual([
        want?.createRevision,
        want?.modRevision,
        want?.version,
        want?.lease,
      ]);
    });
  });

  it("decodes an empty response", () => {
    expect(decodeRangeResponse(Buffer.alloc(0))).toEqual({
      revision: 0n,
      kvs: [],
      more: false,
      count: 0n,
    });
  });

  it("rejects a message whose field runs past its end", () => {
    const bytes = Buffer.from(
      toBinary(
        RangeResponseSchema,
        create(RangeResponseSchema, { kvs: [create(KeyValueSchema, { key: text("abc") })] }),
      ),
    );
    expect(() => decodeRangeResponse(bytes.subarray(0, bytes.length - 1))).toThrow(DecodeError);
    expect(() => visitRangeResponse(bytes.subarray(0, bytes.length - 1), () => undefined)).toThrow(
      DecodeError,
    );
  });
});
