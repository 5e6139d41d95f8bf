import { describe, expect, it } from "vitest";

import { HttpError } from "./http-error.js";
import { MAX_TARGET_LENGTH, requestPath } from "./url.js";

function statusOf(target: string): number {
  try {
    requestPath(target);
    return 0;
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
}

describe("requestPath", () => {
  it("returns ordinary paths unchanged", () => {
    expect(requestPath("/nix-cache-info")).toBe("/nix-cache-info");
    expect(requestPath("/0123456789abcdfghijklmnpqrsvwxyz.narinfo")).toBe(
      "/0123456789abcdfghijklmnpqrsvwxyz.narinfo",
    );
  });

  it("drops the query", () => {
    expect(requestPath("/metrics?x=1&y=/../..")).toBe("/metrics");
  });

  it("reduces absolute-form targets to their path", () => {
    expect(requestPath("http://cache.example:35742/nix-cache-info")).toBe("/nix-cache-info");
    expect(requestPath("HTTP://cache.example")).toBe("/");
  });

  it("refuses targets that are not paths", () => {
    expect(statusOf("*")).toBe(400);
    expect(statusOf("nix-cache-info")).toBe(400);
    expect(statusOf("ftp://x/y")).toBe(400);
  });

  it("decodes escapes of unreserved characters only", () => {
    expect(requestPath("/nix%2Dcache%2dinfo")).toBe("/nix-cache-info");
    expect(requestPath("/%41%7e")).toBe("/A~");
  });

  it("refuses an encoded slash", () => {
    expect(statusOf("/nar%2f..%2f..%2fetc%2fpasswd")).toBe(400);
    expect(statusOf("/nar/%2Fetc")).toBe(400);
  });

  it("refuses double encoding", () => {
    expect(statusOf("/%252e%252e/%252e%252e/etc/passwd")).toBe(400);
    expect(statusOf("/nar/%25")).toBe(400);
  });

  it("refuses malformed escapes and escapes of reserved, control or non-ASCII bytes", () => {
    expect(statusOf("/%")).toBe(400);
    expect(statusOf("/%4")).toBe(400);
    expect(statusOf("/%zz")).toBe(400);
    expect(statusOf("/a%00b")).toBe(400);
    expect(statusOf("/a%3fb")).toBe(400);
    expect(statusOf("/a%c3%a9")).toBe(400);
    expect(statusOf("/a%5cb")).toBe(400);
  });

  it("refuses dot segments, plain or encoded", () => {
    expect(statusOf("/nar/../../etc/passwd")).toBe(400);
    expect(statusOf("/..")).toBe(400);
    expect(statusOf("/./nix-cache-info")).toBe(400);
    expect(statusOf("/nar/%2e%2e/%2e%2e/etc/passwd")).toBe(400);
    expect(statusOf("/nar/.%2e/x")).toBe(400);
    expect(statusOf("/nar/%2E")).toBe(400);
  });

  it("keeps names that merely contain dots", () => {
    expect(requestPath("/a..b/.c/d.")).toBe("/a..b/.c/d.");
  });

  it("refuses fragments", () => {
    expect(statusOf("/nix-cache-info#x")).toBe(400);
  });

  it("refuses targets over the length limit with 414", () => {
    expect(statusOf(`/${"a".repeat(MAX_TARGET_LENGTH - 1)}`)).toBe(0);
    expect(statusOf(`/${"a".repeat(MAX_TARGET_LENGTH)}`)).toBe(414);
  });
});
