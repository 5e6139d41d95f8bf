import { isIP } from "node:net";

import { describe, expect, it } from "vitest";

import { checkHttpUrl, isLoopbackIPv4 } from "./index.js";

const PEER = { example: "http://10.0.0.2:35742" };
const ETCD = { example: "http://etcd1.internal:2379", originOnly: true };

describe("checkHttpUrl", () => {
  it("accepts http and https URLs, with a path unless origin-only", () => {
    expect(checkHttpUrl("http://10.0.0.2:35742", PEER)).toBeUndefined();
    expect(checkHttpUrl("https://user:pw@cache.example/prefix", PEER)).toBeUndefined();
    expect(checkHttpUrl("http://etcd1.internal:2379", ETCD)).toBeUndefined();
    expect(checkHttpUrl("http://etcd1.internal:2379/", ETCD)).toBeUndefined();
  });

  it("says what is wrong, with the example", () => {
    expect(checkHttpUrl("10.0.0.2:35742", PEER)).toBe(
      '"10.0.0.2:35742" is not a URL; write it like "http://10.0.0.2:35742"',
    );
    expect(checkHttpUrl("ftp://host", PEER)).toBe('"ftp://host" must use http:// or https://');
    expect(checkHttpUrl("http://host/?x=1", PEER)).toBe(
      '"http://host/?x=1" must not have a query or fragment',
    );
    expect(checkHttpUrl("http://host:2379/v3", ETCD)).toBe(
      '"http://host:2379/v3" must be a scheme, host and port only, like "http://etcd1.internal:2379"',
    );
  });

  it("redacts credentials in every message", () => {
    for (const [value, rules] of [
      ["http://user:secret@host:1/x?q", PEER],
      ["http://user:secret@host:1#f", PEER],
      ["ftp://user:secret@host", PEER],
      ["http://user:secret@host:2379/v3", ETCD],
      ["http://user:secret@[::1", PEER],
    ] as const) {
      const message = checkHttpUrl(value, rules);
      expect(message).toContain("***@");
      expect(message).not.toContain("secret");
    }
  });
});

describe("isLoopbackIPv4", () => {
  it("agrees with node:net's isIP on 127.0.0.0/8 and its look-alikes", () => {
    const loopback = ["127.0.0.1", "127.255.255.255", "127.0.0.0", "127.1.2.3"];
    const not = [
      "128.0.0.1",
      "10.0.0.1",
      "127.0.0.256",
      "127.0.0",
      "127.0.0.1.5",
      "127.00.0.1",
      "127.0.0.01",
      "127.example.com",
      "::1",
      "::ffff:127.0.0.1",
      " 127.0.0.1",
      "",
    ];
    for (const host of loopback) {
      expect(isLoopbackIPv4(host), host).toBe(true);
      expect(isIP(host), host).toBe(4);
    }
    for (const host of not) {
      expect(isLoopbackIPv4(host), host).toBe(isIP(host) === 4 && host.startsWith("127."));
      expect(isLoopbackIPv4(host), host).toBe(false);
    }
  });
});
