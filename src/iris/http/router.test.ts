import { describe, expect, it } from "vitest";

import { HttpError } from "./http-error.js";
import { createRouter, exactPath, narInfoPath, narPath, type Route } from "./router.js";

const HASH = "0123456789abcdfghijklmnpqrsvwxyz";
const NAR_HASH = "1dcalga03qi3xwag9ak7fkissrl5lc1v15jgv4c3q6grccqb55vr";

function route(name: string, match: Route["match"], methods = ["GET", "HEAD"]): Route {
  return { name, methods, match, handle: () => ({ status: 200, bytes: 0 }) };
}

const router = createRouter([
  route("cache-info", exactPath("/nix-cache-info")),
  route("narinfo", narInfoPath("/")),
  route("nar", narPath("/")),
  route("local-narinfo", narInfoPath("/local/")),
  route("rescan", exactPath("/rescan"), ["POST"]),
]);

function statusOf(method: string, path: string): number | string {
  try {
    return router.find(method, path).route.name;
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
}

describe("router", () => {
  it("finds each route with its parameters", () => {
    expect(router.find("GET", "/nix-cache-info").route.name).toBe("cache-info");
    expect(router.find("HEAD", `/${HASH}.narinfo`).params).toEqual([HASH]);
    expect(router.find("GET", `/nar/${HASH}-${NAR_HASH}.nar`).params).toEqual([HASH, NAR_HASH]);
    expect(router.find("GET", `/local/${HASH}.narinfo`).route.name).toBe("local-narinfo");
  });

  it("answers 404 for paths no route owns", () => {
    expect(statusOf("GET", "/")).toBe(404);
    expect(statusOf("GET", "/etc/passwd")).toBe(404);
    expect(statusOf("GET", "/nix-cache-info/")).toBe(404);
    expect(statusOf("GET", `/x/${HASH}.narinfo`)).toBe(404);
    expect(statusOf("GET", `/nar/${HASH}-${NAR_HASH}.nar.xz`)).toBe(404);
    expect(statusOf("GET", `/nar/x/${HASH}-${NAR_HASH}.nar`)).toBe(404);
    expect(statusOf("GET", `//${HASH}.narinfo`)).toBe(404);
  });

  it("answers 400 for a malformed hash in a narinfo URL", () => {
    expect(statusOf("GET", "/abc.narinfo")).toBe(400);
    expect(statusOf("GET", `/${HASH.toUpperCase()}.narinfo`)).toBe(400);
    // e, o, u and t are not nix32 digits.
    expect(statusOf("GET", `/${"e".repeat(32)}.narinfo`)).toBe(400);
    expect(statusOf("GET", `/${HASH}0.narinfo`)).toBe(400);
    expect(statusOf("GET", "/.narinfo")).toBe(400);
  });

  it("answers 404, never 400, for NAR names outside our scheme (Nix's own among them)", () => {
    expect(statusOf("GET", `/nar/${NAR_HASH}.nar`)).toBe(404);
    expect(statusOf("GET", `/nar/${HASH}_${NAR_HASH}.nar`)).toBe(404);
    expect(statusOf("GET", `/nar/${HASH}-${NAR_HASH.slice(1)}.nar`)).toBe(404);
    expect(statusOf("GET", `/nar/${HASH}-${NAR_HASH.slice(1)}e.nar`)).toBe(404);
    expect(statusOf("GET", "/nar/..%2f..%2fetc%2fpasswd.nar")).toBe(404);
  });

  it("answers every write with 405, Allow and the read-only message, on any path", () => {
    for (const [method, path] of [
      ["PUT", `/nar/${NAR_HASH}.nar.xz`],
      ["PUT", `/${HASH}.narinfo`],
      ["POST", "/anything"],
      ["DELETE", "/nix-cache-info"],
    ] as const) {
      try {
        router.find(method, path);
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(HttpError);
        expect((err as HttpError).status).toBe(405);
        expect((err as HttpError).message).toMatch(/read-only/);
        expect((err as HttpError).headers).toEqual({ Allow: "GET, HEAD" });
      }
    }
  });

  it("answers 405 with Allow for other methods", () => {
    try {
      router.find("POST", "/nix-cache-info");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).status).toBe(405);
      expect((err as HttpError).headers).toEqual({ Allow: "GET, HEAD" });
    }
    expect(statusOf("GET", "/rescan")).toBe(405);
    expect(statusOf("POST", "/rescan")).toBe("rescan");
  });
});
