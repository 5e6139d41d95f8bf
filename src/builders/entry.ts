/**
 * A host's builder entry: what it publishes under `<namespace>/<host>/builder`
 * (JSON), checked strictly when read (it comes from the fleet, untrusted),
 * and the line of Nix's machines file it becomes.
 *
 * Nix's machines format (one builder a line, fields separated by spaces,
 * lists by commas, `-` for an empty field): URI, systems, SSH identity
 * file, max jobs, speed factor, supported features, mandatory features,
 * base64 of the builder's SSH public host key.
 */

import { naturalCompare } from "../core/index.js";

/** The entry as published. Unknown keys are ignored when read (newer publishers). */
export interface BuilderEntry {
  /** `ssh-ng://user@address` or `ssh://user@address`. */
  uri: string;
  systems: string[];
  maxJobs: number;
  speedFactor: number;
  supportedFeatures: string[];
  mandatoryFeatures: string[];
  /** Base64 of the SSH public host key line (`ssh-ed25519 AAAA...`). */
  publicHostKey: string;
}

/** A builder offered by a host of the fleet. */
export interface Builder {
  host: string;
  entry: BuilderEntry;
}

/** The largest entry read; a real one is a few hundred bytes. */
export const MAX_ENTRY_BYTES = 16 * 1024;

const USER = "[a-z_][a-z0-9_-]{0,31}";
// A DNS name or IPv4 address: ssh and Nix's URI parser both take it as is.
const ADDRESS = "[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?";
const URI = new RegExp(`^(ssh-ng|ssh)://(${USER})@(${ADDRESS})$`);
/** A system type or feature name: no separator of the machines format. */
const WORD = /^[A-Za-z0-9_.+-]{1,64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** One OpenSSH public key: type and key, no comment, no line breaks. */
const HOST_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) [A-Za-z0-9+/]+={0,3}$/;

/** The parts of a builder URI. */
export function parseBuilderUri(
  uri: string,
): { protocol: "ssh-ng" | "ssh"; user: string; address: string } | undefined {
  const match = URI.exec(uri);
  if (!match) return undefined;
  return {
    protocol: match[1] === "ssh" ? "ssh" : "ssh-ng",
    user: match[2] ?? "",
    address: match[3] ?? "",
  };
}

/** The host key line a `publicHostKey` holds, or undefined when it is not one. */
export function decodeHostKey(publicHostKey: string): string | undefined {
  if (publicHostKey === "" || !BASE64.test(publicHostKey)) return undefined;
  const line = Buffer.from(publicHostKey, "base64").toString("utf8").trim();
  return HOST_KEY.test(line) ? line : undefined;
}

/** `type key` of an OpenSSH public key file's text (the comment dropped), or undefined. */
export function hostKeyLine(text: string): string | undefined {
  const [type, key] = text.trim().split(/\s+/);
  const line = `${type ?? ""} ${key ?? ""}`;
  return HOST_KEY.test(line) ? line : undefined;
}

function wordList(value: unknown, name: string, minItems: number): string[] | string {
  if (!Array.isArray(value)) return `${name} is not a list`;
  if (value.length < minItems) return `${name} is empty`;
  if (value.length > 64) return `${name} has more than 64 items`;
  for (const item of value) {
    if (typeof item !== "string" || !WORD.test(item)) {
      return `${name} holds ${JSON.stringify(item)}, not a name of letters, digits and "_.+-"`;
    }
  }
  return value as string[];
}

/**
 * Parses a published entry. Returns the entry, or the reason it is refused
 * (the caller names the host): malformed JSON, a bad URI or host key, a
 * field of the wrong type or out of range.
 */
export function parseBuilderEntry(raw: Uint8Array): BuilderEntry | { problem: string } {
  if (raw.byteLength > MAX_ENTRY_BYTES) {
    return { problem: `entry is ${raw.byteLength} bytes, over ${MAX_ENTRY_BYTES}` };
  }
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch {
    return { problem: "entry is not JSON" };
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    return { problem: "entry is not a JSON object" };
  }
  const o = data as Record<string, unknown>;
  if (typeof o.uri !== "string" || !parseBuilderUri(o.uri)) {
    return {
      problem: `uri ${JSON.stringify(o.uri ?? null).slice(0, 80)} is not ssh-ng://user@address or ssh://user@address`,
    };
  }
  const systems = wordList(o.systems, "systems", 1);
  if (typeof systems === "string") return { problem: systems };
  if (typeof o.maxJobs !== "number" || !Number.isInteger(o.maxJobs) || o.maxJobs < 1) {
    return { problem: `maxJobs ${JSON.stringify(o.maxJobs ?? null)} is not a positive integer` };
  }
  if (
    typeof o.speedFactor !== "number" ||
    !Number.isFinite(o.speedFactor) ||
    !(o.speedFactor > 0)
  ) {
    return {
      problem: `speedFactor ${JSON.stringify(o.speedFactor ?? null)} is not a positive number`,
    };
  }
  const supported = wordList(o.supportedFeatures ?? [], "supportedFeatures", 0);
  if (typeof supported === "string") return { problem: supported };
  const mandatory = wordList(o.mandatoryFeatures ?? [], "mandatoryFeatures", 0);
  if (typeof mandatory === "string") return { problem: mandatory };
  if (typeof o.publicHostKey !== "string" || decodeHostKey(o.publicHostKey) === undefined) {
    return { problem: "publicHostKey is not the base64 of an SSH public host key" };
  }
  return {
    uri: o.uri,
    systems,
    maxJobs: o.maxJobs,
    speedFactor: o.speedFactor,
    supportedFeatures: supported,
    mandatoryFeatures: mandatory,
    publicHostKey: o.publicHostKey,
  };
}

/** The entry as published: stable key order, so an unchanged entry is the same bytes. */
export function serializeBuilderEntry(entry: BuilderEntry): string {
  return JSON.stringify({
    uri: entry.uri,
    systems: entry.systems,
    maxJobs: entry.maxJobs,
    speedFactor: entry.speedFactor,
    supportedFeatures: entry.supportedFeatures,
    mandatoryFeatures: entry.mandatoryFeatures,
    publicHostKey: entry.publicHostKey,
  });
}

const list = (items: readonly string[]): string => (items.length === 0 ? "-" : items.join(","));

/** The machines-file line of an entry; `sshKey` is the identity file Nix uses (`-`: ssh's default). */
export function machinesLine(entry: BuilderEntry, sshKey = "-"): string {
  return [
    entry.uri,
    list(entry.systems),
    sshKey === "" ? "-" : sshKey,
    String(entry.maxJobs),
    String(entry.speedFactor),
    list(entry.supportedFeatures),
    list(entry.mandatoryFeatures),
    entry.publicHostKey,
  ].join(" ");
}

/** Best first: faster, then more jobs, then by host name. */
export function compareBuilders(a: Builder, b: Builder): number {
  return (
    b.entry.speedFactor - a.entry.speedFactor ||
    b.entry.maxJobs - a.entry.maxJobs ||
    naturalCompare(a.host, b.host)
  );
}

/** The machines file for these builders (sorted best first), ending in a newline when not empty. */
export function machinesFile(builders: readonly Builder[], sshKey = "-"): string {
  const sorted = [...builders].sort(compareBuilders);
  return sorted.map((b) => `${machinesLine(b.entry, sshKey)}\n`).join("");
}
