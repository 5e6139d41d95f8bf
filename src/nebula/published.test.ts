import { describe, expect, it } from "vitest";

import { decodeNebulaFacts, encodeNebulaFacts } from "./published.js";

const FACTS = {
  name: "web01",
  ips: ["198.18.0.1/24"],
  groups: ["web"],
  notBefore: "2026-01-01T00:00:00Z",
  notAfter: "2027-01-01T00:00:00Z",
  isCa: false,
  issuer: "b".repeat(64),
  fingerprint: "a".repeat(64),
  publicKey: "c".repeat(64),
};

describe("the published nebula value", () => {
  it("round-trips a certificate's public facts and leaves out its key", () => {
    const text = encodeNebulaFacts(FACTS);
    expect(text).not.toContain("c".repeat(64));
    expect(decodeNebulaFacts(text)).toEqual({ ...FACTS, publicKey: "" });
  });

  it("names the field that is wrong", () => {
    const good = JSON.parse(encodeNebulaFacts(FACTS)) as Record<string, unknown>;
    const bad = (patch: Record<string, unknown>) =>
      decodeNebulaFacts(JSON.stringify({ ...good, ...patch }));
    expect(decodeNebulaFacts("{")).toEqual({ problem: "its published nebula value is not JSON" });
    expect(decodeNebulaFacts("[]")).toEqual({
      problem: "its published nebula value is not an object",
    });
    expect(bad({ address: "10.0.0.1" })).toEqual({
      problem: "its published nebula value has a bad address",
    });
    expect(bad({ groups: ["ok", 3] })).toEqual({
      problem: "its published nebula value has a bad groups",
    });
    expect(bad({ not_after: "soon" })).toEqual({
      problem: "its published nebula value has a bad not_after",
    });
    expect(bad({ ca_fingerprint: "XYZ" })).toEqual({
      problem: "its published nebula value has a bad ca_fingerprint",
    });
    expect(bad({ address: null })).toMatchObject({ ips: [] });
  });
});
