import { describe, expect, it } from "vitest";

import { CompareResult, CompareTarget, isDeleteEvent, prefixRangeEnd } from "./client.js";
import { Event_EventType } from "./kv_pb.js";
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
    expect(isDeleteEvent({ type: Event_EventType.Delete } as never)).toBe(true);
    expect(isDeleteEvent({ type: Event_EventType.Put } as never)).toBe(false);
  });
});

describe("prefixRangeEnd", () => {
  it("increments the last byte that can be, as etcdctl --prefix does", () => {
    expect([...prefixRangeEnd(Buffer.from("/ns/"))]).toEqual([...Buffer.from("/ns0")]);
    expect([...prefixRangeEnd(Uint8Array.of(0x61, 0xff, 0xff))]).toEqual([0x62]);
    expect([...prefixRangeEnd(Uint8Array.of(0xff))]).toEqual([0]);
  });
});
