/**
 * The `nebula` key a host publishes: its certificate's facts as JSON, the
 * same on every backend. Written by `ogygia publish` from `[ogygia.nebula]
 * cert_file`, read by `ogygia nebula status`. Only public facts: no key,
 * not even the public one (the fingerprint names the certificate).
 */

import type { CertificateFacts } from "./cert-tool.js";

/** The published value's fields, in the order they are written. */
export interface PublishedNebulaFacts {
  name: string;
  /** `a.b.c.d/bits`, the certificate's first address; null when it has none. */
  address: string | null;
  groups: string[];
  not_before: string;
  not_after: string;
  fingerprint: string;
  /** The fingerprint of the CA that signed it (the certificate's issuer). */
  ca_fingerprint: string;
}

/** The value to publish for a host certificate. */
export function encodeNebulaFacts(facts: CertificateFacts): string {
  const value: PublishedNebulaFacts = {
    name: facts.name,
    address: facts.ips[0] ?? null,
    groups: facts.groups,
    not_before: facts.notBefore,
    not_after: facts.notAfter,
    fingerprint: facts.fingerprint,
    ca_fingerprint: facts.issuer,
  };
  return JSON.stringify(value);
}

const HEX64 = /^[0-9a-f]{64}$/;
const CIDR = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
// Names and groups are any printable text: nebula-cert accepts more than `sign` does.
// eslint-disable-next-line no-control-regex
const NAME = /^[^\u0000-\u001f\u007f]{1,253}$/;

function isTime(value: unknown): value is string {
  return typeof value === "string" && !Number.isNaN(Date.parse(value));
}

/**
 * A published value checked field by field, as the facts `assessCertificates`
 * takes (`publicKey` is not published: empty), or why it is not one.
 */
export function decodeNebulaFacts(text: string): CertificateFacts | { problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { problem: "its published nebula value is not JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { problem: "its published nebula value is not an object" };
  }
  const v = parsed as Record<string, unknown>;
  const bad = (field: string): { problem: string } => ({
    problem: `its published nebula value has a bad ${field}`,
  });
  if (typeof v.name !== "string" || !NAME.test(v.name)) return bad("name");
  if (v.address !== null && (typeof v.address !== "string" || !CIDR.test(v.address))) {
    return bad("address");
  }
  if (
    !Array.isArray(v.groups) ||
    !v.groups.every((g): g is string => typeof g === "string" && NAME.test(g))
  ) {
    return bad("groups");
  }
  if (!isTime(v.not_before)) return bad("not_before");
  if (!isTime(v.not_after)) return bad("not_after");
  if (typeof v.fingerprint !== "string" || !HEX64.test(v.fingerprint)) return bad("fingerprint");
  if (typeof v.ca_fingerprint !== "string" || !HEX64.test(v.ca_fingerprint)) {
    return bad("ca_fingerprint");
  }
  return {
    name: v.name,
    ips: v.address === null ? [] : [v.address],
    groups: v.groups,
    notBefore: v.not_before,
    notAfter: v.not_after,
    isCa: false,
    issuer: v.ca_fingerprint,
    fingerprint: v.fingerprint,
    publicKey: "",
  };
}
