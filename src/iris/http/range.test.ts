import { describe, expect, it } from "vitest";

import { evaluateRange } from "./range.js";

const SIZE = 1000;

describe("evaluateRange", () => {
  it("sends everything without a Range", () => {
    expect(evaluateRange(undefined, SIZE)).toEqual({ kind: "full" });
  });

  it("honours a closed range", () => {
    expect(evaluateRange("bytes=0-99", SIZE)).toEqual({ kind: "partial", start: 0, length: 100 });
    expect(evaluateRange("bytes=999-999", SIZE)).toEqual({
      kind: "partial",
      start: 999,
      length: 1,
    });
  });

  it("honours an open range, to resume a download", () => {
    expect(evaluateRange("bytes=400-", SIZE)).toEqual({ kind: "partial", start: 400, length: 600 });
  });

  it("clamps a last position past the end", () => {
    expect(evaluateRange("bytes=10-5000", SIZE)).toEqual({
      kind: "partial",
      start: 10,
      length: 990,
    });
    expect(evaluateRange("bytes=10-99999999999999999999999", SIZE)).toEqual({
      kind: "partial",
      start: 10,
      length: 990,
    });
  });

  it("honours suffix ranges, clamped to the whole body", () => {
    expect(evaluateRange("bytes=-100", SIZE)).toEqual({ kind: "partial", start: 900, length: 100 });
    expect(evaluateRange("bytes=-5000", SIZE)).toEqual({ kind: "partial", start: 0, length: 1000 });
  });

  it("accepts the unit in any case and whitespace around the specifier", () => {
    expect(evaluateRange(" Bytes = 1-2 ", SIZE)).toEqual({ kind: "partial", start: 1, length: 2 });
  });

  it("is unsatisfiable when the range starts at or past the end", () => {
    expect(evaluateRange("bytes=1000-", SIZE)).toEqual({ kind: "unsatisfiable" });
    expect(evaluateRange("bytes=1000-2000", SIZE)).toEqual({ kind: "unsatisfiable" });
    expect(evaluateRange("bytes=99999999999999999999999-", SIZE)).toEqual({
      kind: "unsatisfiable",
    });
  });

  it("is unsatisfiable for an empty suffix", () => {
    expect(evaluateRange("bytes=-0", SIZE)).toEqual({ kind: "unsatisfiable" });
  });

  it("ignores several ranges and sends the whole body", () => {
    expect(evaluateRange("bytes=0-1,5-6", SIZE)).toEqual({ kind: "full" });
    const many = Array.from({ length: 500 }, (_, i) => `${i}-${i}`).join(",");
    expect(evaluateRange(`bytes=${many}`, SIZE)).toEqual({ kind: "full" });
  });

  it("treats empty list elements as absent", () => {
    expect(evaluateRange("bytes=,0-1,", SIZE)).toEqual({ kind: "partial", start: 0, length: 2 });
  });

  it("ignores invalid specifiers and other units", () => {
    for (const header of [
      "bytes=5-2",
      "bytes=abc",
      "bytes=1-2-3",
      "bytes=-",
      "bytes=",
      "bytes",
      "bytes=0x10-",
      "bytes=+1-2",
      "bytes=1 -2",
      "bytes=-1e3",
      "items=0-1",
      "",
    ]) {
      expect(evaluateRange(header, SIZE), header).toEqual({ kind: "full" });
    }
  });

  it("honours the range only when If-Range matches the entity tag", () => {
    const etag = '"abc"';
    expect(evaluateRange("bytes=0-0", SIZE, { ifRange: etag, etag })).toEqual({
      kind: "partial",
      start: 0,
      length: 1,
    });
    expect(evaluateRange("bytes=0-0", SIZE, { ifRange: '"other"', etag })).toEqual({
      kind: "full",
    });
    expect(
      evaluateRange("bytes=0-0", SIZE, { ifRange: "Wed, 21 Oct 2015 07:28:00 GMT", etag }),
    ).toEqual({ kind: "full" });
    expect(evaluateRange("bytes=0-0", SIZE, { ifRange: undefined, etag })).toEqual({
      kind: "partial",
      start: 0,
      length: 1,
    });
  });
});
