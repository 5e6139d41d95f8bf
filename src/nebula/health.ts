/**
 * How the fleet's Nebula certificates stand: time left, who signed them,
 * addresses given twice. Pure: the facts come from the registry (what each
 * host publishes) or from a folder of certificates, the clock from the
 * caller.
 */

import type { CertificateFacts } from "./cert-tool.js";

export type CertLevel = "ok" | "warning" | "critical";

/** One host's certificate as read, or why it could not be. */
export interface CertEntry {
  host: string;
  facts: CertificateFacts | null;
  /** Why `facts` is null (a malformed published value, ...). */
  problem?: string | undefined;
}

export interface CertStatus {
  host: string;
  /** `a.b.c.d/bits`, or null when unknown. */
  address: string | null;
  groups: string[];
  notAfter: string | null;
  /** Milliseconds until `notAfter` (negative once expired), or null. */
  remainingMs: number | null;
  level: CertLevel;
  /** Why the level is not ok, most serious first. */
  reasons: string[];
  fingerprint: string | null;
  issuer: string | null;
}

export interface AddressConflict {
  address: string;
  hosts: string[];
}

export interface CertReport {
  certificates: CertStatus[];
  conflicts: AddressConflict[];
  /** Whether the issuer was checked against known CAs. */
  caChecked: boolean;
}

/** Under this share of its lifetime left, a certificate warns. */
export const WARN_FRACTION = 1 / 3;

/** "3d 4h", "5h 12m", "42m", "30s": the largest two units. */
export function formatDuration(ms: number): string {
  const seconds = Math.floor(Math.abs(ms) / 1000);
  const units: [number, string][] = [
    [86_400, "d"],
    [3600, "h"],
    [60, "m"],
    [1, "s"],
  ];
  const parts: string[] = [];
  let rest = seconds;
  for (const [size, unit] of units) {
    if (rest >= size || (parts.length === 0 && size === 1)) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(" ");
}

function addressOnly(cidr: string): string {
  const slash = cidr.indexOf("/");
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

/**
 * Assesses every host's certificate at `now`. `knownCas` holds the
 * fingerprints of the CAs the mesh trusts; null when none is known here,
 * in which case issuers are not checked (and the report says so).
 */
export function assessCertificates(
  entries: readonly CertEntry[],
  options: { now: number; knownCas: ReadonlySet<string> | null },
): CertReport {
  const byAddress = new Map<string, string[]>();
  const certificates: CertStatus[] = entries.map((entry) => {
    const { facts } = entry;
    if (facts === null) {
      return {
        host: entry.host,
        address: null,
        groups: [],
        notAfter: null,
        remainingMs: null,
        level: "critical",
        reasons: [entry.problem ?? "no certificate facts"],
        fingerprint: null,
        issuer: null,
      };
    }
    const critical: string[] = [];
    const warning: string[] = [];
    const notAfter = Date.parse(facts.notAfter);
    const notBefore = Date.parse(facts.notBefore);
    const remainingMs = Number.isNaN(notAfter) ? null : notAfter - options.now;
    if (remainingMs === null) {
      critical.push(`its expiry ${JSON.stringify(facts.notAfter)} is not a time`);
    } else if (remainingMs <= 0) {
      critical.push(`expired ${formatDuration(remainingMs)} ago`);
    } else if (!Number.isNaN(notBefore)) {
      const lifetime = notAfter - notBefore;
      if (notBefore > options.now) warning.push("not valid yet");
      else if (remainingMs < lifetime * WARN_FRACTION) {
        warning.push(`${formatDuration(remainingMs)} left of ${formatDuration(lifetime)}`);
      }
    }
    if (options.knownCas !== null && !options.knownCas.has(facts.issuer)) {
      critical.push(`signed by an unknown CA ${facts.issuer.slice(0, 12)}`);
    }
    if (facts.isCa) critical.push("is a CA certificate, not a host's");
    if (facts.name !== entry.host) warning.push(`names ${JSON.stringify(facts.name)}`);
    const address = facts.ips[0] ?? null;
    for (const ip of facts.ips) {
      const key = addressOnly(ip);
      const hosts = byAddress.get(key) ?? [];
      if (!hosts.includes(entry.host)) hosts.push(entry.host);
      byAddress.set(key, hosts);
    }
    return {
      host: entry.host,
      address,
      groups: facts.groups,
      notAfter: facts.notAfter,
      remainingMs,
      level: critical.length > 0 ? "critical" : warning.length > 0 ? "warning" : "ok",
      reasons: [...critical, ...warning],
      fingerprint: facts.fingerprint,
      issuer: facts.issuer,
    };
  });
  const conflicts: AddressConflict[] = [];
  for (const [address, hosts] of byAddress) {
    if (hosts.length < 2) continue;
    conflicts.push({ address, hosts: [...hosts].sort() });
    for (const status of certificates) {
      if (!hosts.includes(status.host)) continue;
      const others = hosts.filter((h) => h !== status.host);
      status.level = "critical";
      status.reasons.unshift(`address ${address} also given to ${others.join(", ")}`);
    }
  }
  conflicts.sort((a, b) => a.address.localeCompare(b.address));
  certificates.sort((a, b) => a.host.localeCompare(b.host));
  return { certificates, conflicts, caChecked: options.knownCas !== null };
}

function isNewer(a: CertificateFacts, b: CertificateFacts): boolean {
  const started = Date.parse(a.notBefore) - Date.parse(b.notBefore);
  return started !== 0 ? started > 0 : Date.parse(a.notAfter) > Date.parse(b.notAfter);
}

/** A certificate `rekey` would renew, and why. */
export interface RekeyCandidate {
  file: string;
  facts: CertificateFacts;
  remainingMs: number;
}

/**
 * The certificates of a folder due for renewal at `now`: per host name only
 * the newest (the last signed, by its start of validity, then the later
 * expiry: it is the one the host was given; older ones are superseded, even
 * a longer one), those with less
 * than `withinMs` left, or, without it, less than a third of their lifetime.
 * CA certificates are never candidates.
 */
export function rekeyCandidates(
  certificates: readonly { file: string; facts: CertificateFacts }[],
  options: { now: number; withinMs?: number | undefined },
): RekeyCandidate[] {
  const newest = new Map<string, { file: string; facts: CertificateFacts }>();
  for (const cert of certificates) {
    if (cert.facts.isCa) continue;
    const seen = newest.get(cert.facts.name);
    if (seen === undefined || isNewer(cert.facts, seen.facts)) newest.set(cert.facts.name, cert);
  }
  const due: RekeyCandidate[] = [];
  for (const cert of newest.values()) {
    const notAfter = Date.parse(cert.facts.notAfter);
    const lifetime = notAfter - Date.parse(cert.facts.notBefore);
    const remainingMs = notAfter - options.now;
    const threshold = options.withinMs ?? lifetime * WARN_FRACTION;
    if (remainingMs < threshold) due.push({ ...cert, remainingMs });
  }
  return due.sort((a, b) => a.facts.name.localeCompare(b.facts.name));
}
