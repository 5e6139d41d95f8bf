import { describe, expect, it } from "vitest";

import { describeFailure, peerBase, peerLabel } from "./peer-http.js";

describe("peer URLs", () => {
  it("split into origin and path prefix", () => {
    expect(peerBase("http://10.0.0.2:35742")).toMatchObject({
      origin: "http://10.0.0.2:35742",
      pathPrefix: "/",
      label: "http://10.0.0.2:35742",
      authorization: undefined,
    });
    expect(peerBase("https://cache.example/irisd/")).toMatchObject({
      origin: "https://cache.example",
      pathPrefix: "/irisd/",
      label: "https://cache.example/irisd",
    });
  });

  it("turn credentials into a Basic header and keep them out of labels", () => {
    const base = peerBase("http://fleet:s%40cret@10.0.0.2:1");
    expect(base.authorization).toBe(`Basic ${Buffer.from("fleet:s@cret").toString("base64")}`);
    expect(base.label).toBe("http://***@10.0.0.2:1");
    expect(peerLabel("http://a:b@h/")).toBe("http://***@h");
  });
});

describe("describeFailure", () => {
  it("says what went wrong in a few words", () => {
    const coded = (code: string): Error => Object.assign(new Error("x"), { code });
    expect(describeFailure(coded("ECONNREFUSED"))).toBe("connection refused");
    expect(describeFailure(coded("UND_ERR_HEADERS_TIMEOUT"))).toBe("timed out");
    expect(describeFailure(coded("UND_ERR_CONNECT_TIMEOUT"))).toBe("connect timed out");
    expect(describeFailure(coded("UND_ERR_BODY_TIMEOUT"))).toBe("the body stalled");
    expect(describeFailure(new Error("something else"))).toBe("something else");
  });
});
