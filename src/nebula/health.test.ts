import { describe, expect, it } from "vitest";

import type { CertificateFacts } from "./cert-tool.js";
import { assessCertificates, formatDuration, rekeyCandidates } from "./health.js";

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 11, 3, 12);
const CA = "ca".repeat(32);

function cert(name: string, ip: string, from: number, to: number, issuer = CA): CertificateFacts {
  return {
    name,
    ips: [ip],
    groups: ["web"],
    notBefore: new Date(from).toISOString(),
    notAfter: new Date(to).toISOString(),
    isCa: false,
    issuer,
    fingerprint: `${name}-fp`,
    publicKey: "00".repeat(32),
  };
}

describe("assessCertificates", () => {
  it("warns under a third of the lifetime, is critical when expired or from an unknown CA", () => {
    const report = assessCertificates(
      [
        { host: "ok", facts: cert("ok", "10.0.0.1/16", NOW - HOUR, NOW + 10 * HOUR) },
        { host: "late", facts: cert("late", "10.0.0.2/16", NOW - 10 * HOUR, NOW + 2 * HOUR) },
        { host: "dead", facts: cert("dead", "10.0.0.3/16", NOW - 10 * HOUR, NOW - HOUR) },
        {
          host: "alien",
          facts: cert("alien", "10.0.0.4/16", NOW, NOW + 9 * HOUR, "ff".repeat(32)),
        },
        { host: "garbled", facts: null, problem: "value is not JSON" },
      ],
      { now: NOW, knownCas: new Set([CA]) },
    );
    const byHost = new Map(report.certificates.map((c) => [c.host, c]));
    expect(byHost.get("ok")).toMatchObject({ level: "ok", reasons: [], remainingMs: 10 * HOUR });
    expect(byHost.get("late")).toMatchObject({ level: "warning", reasons: ["2h left of 12h"] });
    expect(byHost.get("dead")).toMatchObject({ level: "critical", reasons: ["expired 1h ago"] });
    expect(byHost.get("alien")?.level).toBe("critical");
    expect(byHost.get("alien")?.reasons[0]).toMatch(/^signed by an unknown CA ffffff/);
    expect(byHost.get("garbled")).toMatchObject({
      level: "critical",
      reasons: ["value is not JSON"],
    });
    expect(report.conflicts).toEqual([]);
    expect(report.caChecked).toBe(true);
  });

  it("reports an address given to two hosts on both, and skips the CA check without known CAs", () => {
    const report = assessCertificates(
      [
        { host: "a", facts: cert("a", "10.0.0.9/16", NOW - HOUR, NOW + 9 * HOUR) },
        { host: "b", facts: cert("b", "10.0.0.9/16", NOW - HOUR, NOW + 9 * HOUR, "ee".repeat(32)) },
      ],
      { now: NOW, knownCas: null },
    );
    expect(report.conflicts).toEqual([{ address: "10.0.0.9", hosts: ["a", "b"] }]);
    expect(report.certificates.map((c) => [c.host, c.level, c.reasons[0]])).toEqual([
      ["a", "critical", "address 10.0.0.9 also given to b"],
      ["b", "critical", "address 10.0.0.9 also given to a"],
    ]);
    expect(report.caChecked).toBe(false);
  });
});

describe("rekeyCandidates", () => {
  it("takes the newest certificate per host and those under the threshold", () => {
    const due = rekeyCandidates(
      [
        { file: "a-old.crt", facts: cert("a", "10.0.0.1/16", NOW - 20 * HOUR, NOW + HOUR) },
        { file: "a-new.crt", facts: cert("a", "10.0.0.1/16", NOW - HOUR, NOW + 20 * HOUR) },
        { file: "b.crt", facts: cert("b", "10.0.0.2/16", NOW - 10 * HOUR, NOW + 2 * HOUR) },
        { file: "c.crt", facts: cert("c", "10.0.0.3/16", NOW - HOUR, NOW + 5 * HOUR) },
        { file: "ca.crt", facts: { ...cert("ca", "", NOW - HOUR, NOW + HOUR), isCa: true } },
      ],
      { now: NOW },
    );
    expect(due.map((d) => d.file)).toEqual(["b.crt"]);
    const within = rekeyCandidates(
      [{ file: "c.crt", facts: cert("c", "10.0.0.3/16", NOW - HOUR, NOW + 5 * HOUR) }],
      { now: NOW, withinMs: 6 * HOUR },
    );
    expect(within.map((d) => [d.file, d.remainingMs])).toEqual([["c.crt", 5 * HOUR]]);
  });

  it("takes the last signed certificate of a host, even when an older one lasts longer", () => {
    const due = rekeyCandidates(
      [
        { file: "a-long.crt", facts: cert("a", "10.0.0.1/16", NOW - 2 * HOUR, NOW + 20 * HOUR) },
        { file: "a-short.crt", facts: cert("a", "10.0.0.1/16", NOW - HOUR, NOW + 10 * 60_000) },
      ],
      { now: NOW },
    );
    expect(due.map((d) => d.file)).toEqual(["a-short.crt"]);
  });
});

describe("formatDuration", () => {
  it("prints the two largest units", () => {
    expect(formatDuration(0)).toBe("0s");
    expect(formatDuration(90_000)).toBe("1m 30s");
    expect(formatDuration(-(26 * HOUR + 60_000))).toBe("1d 2h");
  });
});
