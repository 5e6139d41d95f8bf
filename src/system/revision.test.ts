import { describe, expect, it } from "vitest";

import { MAX_REVISION_BYTES, parseRevision } from "./revision.js";

const bytes = (text: string): Uint8Array => Buffer.from(text, "utf8");

describe("parseRevision", () => {
  it("trims whitespace around a git revision", () => {
    expect(parseRevision(bytes("  0123456789abcdef\n"))).toEqual({
      ok: true,
      revision: "0123456789abcdef",
    });
  });

  it("treats empty values and the literal 'unknown' as unknown", () => {
    expect(parseRevision(bytes(""))).toEqual({ ok: true, revision: null });
    expect(parseRevision(bytes(" \n"))).toEqual({ ok: true, revision: null });
    expect(parseRevision(bytes("unknown\n"))).toEqual({ ok: true, revision: null });
  });

  it("keeps dirty-tree markers and other printable text", () => {
    expect(parseRevision(bytes("abc123-dirty"))).toEqual({ ok: true, revision: "abc123-dirty" });
  });

  it("refuses oversized values", () => {
    const result = parseRevision(new Uint8Array(MAX_REVISION_BYTES + 1).fill(0x61));
    expect(result).toEqual({
      ok: false,
      reason: expect.stringContaining("the limit is 256") as string,
    });
  });

  it("refuses invalid UTF-8 and control characters", () => {
    expect(parseRevision(Uint8Array.from([0x61, 0xff, 0xfe]))).toEqual({
      ok: false,
      reason: "value is not valid UTF-8",
    });
    expect(parseRevision(bytes("abc\u001b[31m"))).toEqual({
      ok: false,
      reason: "value contains control characters",
    });
    expect(parseRevision(bytes("abc\u202edef"))).toMatchObject({ ok: false });
  });

  it("parses text as it parses the same text's UTF-8 bytes", () => {
    const samples = [
      "",
      " ",
      "unknown",
      " unknown ",
      "abc123-dirty",
      "  0123456789abcdef\n",
      "a".repeat(MAX_REVISION_BYTES),
      "a".repeat(MAX_REVISION_BYTES + 1),
      "é".repeat(200),
      "bad\u0007bell",
      "\u202eevil",
    ];
    for (const text of samples) expect(parseRevision(text)).toEqual(parseRevision(bytes(text)));
  });
});
