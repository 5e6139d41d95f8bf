import { describe, expect, it } from "vitest";

import { FrameDecoder, GrpcError, frame } from "./grpc.js";

describe("gRPC message framing", () => {
  it("prefixes a message with a zero flag and its big-endian length", () => {
    expect([...frame(Buffer.from("hi"))]).toEqual([0, 0, 0, 0, 2, 0x68, 0x69]);
    expect([...frame(new Uint8Array())]).toEqual([0, 0, 0, 0, 0]);
  });

  it("splits messages whatever the chunk boundaries", () => {
    const messages = ["a", "", "bcd", "x".repeat(70_000)].map((m) => Buffer.from(m));
    const stream = Buffer.concat(messages.map(frame));
    for (const size of [1, 2, 5, 7, 4096, stream.length]) {
      const decoder = new FrameDecoder();
      const out: string[] = [];
      for (let i = 0; i < stream.length; i += size) {
        for (const message of decoder.push(stream.subarray(i, i + size))) {
          out.push(message.toString());
        }
      }
      expect(out).toEqual(messages.map((m) => m.toString()));
      expect(decoder.pending).toBe(0);
    }
  });

  it("keeps an incomplete message until the rest arrives", () => {
    const decoder = new FrameDecoder();
    const bytes = frame(Buffer.from("hello"));
    expect(decoder.push(bytes.subarray(0, 6))).toEqual([]);
    expect(decoder.pending).toBe(6);
    expect(decoder.push(bytes.subarray(6)).map(String)).toEqual(["hello"]);
  });

  it("refuses a compressed message", () => {
    const bytes = frame(Buffer.from("z"));
    bytes[0] = 1;
    expect(() => new FrameDecoder().push(bytes)).toThrow(GrpcError);
  });
});
