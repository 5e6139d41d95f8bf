import { describe, expect, it } from "vitest";

import { continuationOf, parseContentRange, rangeHeaders } from "./continuation.js";

const base = { contentRange: undefined, contentLength: undefined };

describe("continuing a NAR at an offset", () => {
  it("asks for the rest with If-Range on the NAR hash, and nothing for the whole NAR", () => {
    expect(rangeHeaders(0, "abc")).toEqual({});
    expect(rangeHeaders(4096, "abc")).toEqual({ range: "bytes=4096-", "if-range": '"abc"' });
  });

  it("takes a 206 for exactly the rest", () => {
    expect(
      continuationOf({
        status: 206,
        contentRange: "bytes 100-999/1000",
        contentLength: "900",
        offset: 100,
        size: 1000,
      }),
    ).toEqual({ ok: true, skip: 0 });
  });

  it("takes a 200 (range ignored) and skips the bytes already received", () => {
    expect(
      continuationOf({ ...base, status: 200, contentLength: "1000", offset: 100, size: 1000 }),
    ).toEqual({ ok: true, skip: 100 });
    expect(continuationOf({ ...base, status: 200, offset: 0, size: 1000 })).toEqual({
      ok: true,
      skip: 0,
    });
  });

  it("refuses a response for other bytes, another size or another status", () => {
    const cases = [
      { status: 206, contentRange: "bytes 0-999/1000", offset: 100 },
      { status: 206, contentRange: "bytes 100-998/1000", offset: 100 },
      { status: 206, contentRange: "bytes 100-999/2000", offset: 100 },
      { status: 206, contentRange: "bytes */1000", offset: 100 },
      { status: 206, contentRange: undefined, offset: 100 },
      { status: 206, contentRange: "bytes 100-999/1000", contentLength: "5", offset: 100 },
      { status: 200, contentLength: "999", offset: 100 },
      { status: 416, offset: 100 },
      { status: 404, offset: 0 },
    ];
    for (const c of cases) {
      const result = continuationOf({ ...base, size: 1000, ...c });
      expect(result.ok, JSON.stringify(c)).toBe(false);
    }
  });

  it("parses Content-Range strictly", () => {
    expect(parseContentRange("bytes 0-0/1")).toEqual({ start: 0, end: 0, total: 1 });
    for (const bad of [
      "bytes 5-2/10",
      "bytes 0-10/10",
      "bytes=0-1/2",
      "bytes 0-1/",
      "items 0-1/2",
    ]) {
      expect(parseContentRange(bad), bad).toBeUndefined();
    }
  });
});
