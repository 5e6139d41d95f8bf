import { describe, expect, it } from "vitest";

import { CompareResult, CompareTarget, prefixRangeEnd } from "./client.js";
import { Compare_CompareResult, Compare_CompareTarget } from "./rpc_pb.js";

describe("the client's copies of generated enum values", () => {
  it("match the generated enums", () => {
    expect(CompareTarget).toEqual({
      Version: Compare_CompareTarget.Version,
      Create: Compare_CompareTarget.Create,
      Mod: Compare_CompareTarget.Mod,
      Lease: Compare_CompareTarget.Lease,
    });
    expect(CompareResult.Equal).toBe(Compare_CompareResult.Equal);
  });
});

describe("prefixRangeEnd", () => {
  it("increments the last byte that can be, as etcdctl --prefix does", () => {
    expect([...prefixRangeEnd(Buffer.from("/ns/"))]).toEqual([...Buffer.from("/ns0")]);
    expect([...prefixRangeEnd(Uint8Array.of(0x61, 0xff, 0xff))]).toEqual([0x62]);
    expect([...prefixRangeEnd(Uint8Array.of(0xff))]).toEqual([0]);
  });
});
