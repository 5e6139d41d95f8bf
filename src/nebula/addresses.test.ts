import { describe, expect, it } from "vitest";

import { contains, formatIpv4, hostRange, parseCidr, parseIpv4, parseSubnet } from "./addresses.js";

describe("IPv4 addresses and subnets", () => {
  it("parses and formats dotted quads, refusing what is not one", () => {
    expect(parseIpv4("10.42.0.1")).toBe(0x0a2a0001);
    expect(formatIpv4(0xffffffff)).toBe("255.255.255.255");
    for (const bad of ["10.42.0", "10.42.0.256", "10.042.0.1", "a.b.c.d", "10.42.0.1.5", ""]) {
      expect(parseIpv4(bad), bad).toBeUndefined();
    }
    expect(parseCidr("10.42.0.7/16")).toEqual({ address: 0x0a2a0007, bits: 16 });
    expect(parseCidr("10.42.0.7/33")).toBeUndefined();
    expect(parseCidr("10.42.0.7")).toBeUndefined();
  });

  it("takes a subnet's host addresses between its network and broadcast addresses", () => {
    const net = parseSubnet("10.42.0.0/24");
    if (typeof net === "string") throw new Error(net);
    const { first, last } = hostRange(net);
    expect([formatIpv4(first), formatIpv4(last)]).toEqual(["10.42.0.1", "10.42.0.254"]);
    expect(contains(net, first)).toBe(true);
    expect(contains(net, net.base)).toBe(false);
    expect(contains(net, last + 1)).toBe(false);
  });

  it("explains a subnet it refuses", () => {
    expect(parseSubnet("10.42.0.5/24")).toBe(
      "10.42.0.5/24 is not a network address (did you mean 10.42.0.0/24?)",
    );
    expect(parseSubnet("10.42.0.0/31")).toBe(
      "10.42.0.0/31 has no room for hosts: use a prefix of /30 or shorter",
    );
    expect(parseSubnet("mesh")).toBe('"mesh" is not an IPv4 network like "10.42.0.0/16"');
  });
});
