/**
 * Debian's `nebula-cert`, the only module that runs it: we shell out to it
 * and never write the certificate format ourselves. Failures become
 * `OgygiaError`s carrying its message.
 */

import { execFile } from "node:child_process";

import { OgygiaError, hasErrorCode } from "../core/index.js";

const TOOL = "nebula-cert";
const DEADLINE_MS = 30_000;

function run(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(TOOL, args, { timeout: DEADLINE_MS }, (err, stdout, stderr) => {
      if (err === null) {
        resolve(stdout);
        return;
      }
      if (hasErrorCode(err, "ENOENT")) {
        reject(
          new OgygiaError("ERR_OGYGIA_NEBULA", `${TOOL} is not installed`, {
            hint: "Install Nebula (Debian: apt-get install nebula; NixOS: pkgs.nebula).",
          }),
        );
        return;
      }
      const said = `${stderr}\n${stdout}`
        .split("\n")
        .map((l) => l.trim())
        .find((l) => l.startsWith("Error:"));
      reject(
        new OgygiaError(
          "ERR_OGYGIA_NEBULA",
          `${TOOL} ${args[0] ?? ""} failed: ${said?.slice("Error:".length).trim() ?? err.message}`,
        ),
      );
    });
  });
}

export interface CaOptions {
  name: string;
  /** Go duration, e.g. `8760h`. */
  duration?: string;
  crt: string;
  key: string;
}

export async function createCa(options: CaOptions): Promise<void> {
  const args = ["ca", "-name", options.name, "-out-crt", options.crt, "-out-key", options.key];
  if (options.duration !== undefined) args.push("-duration", options.duration);
  await run(args);
}

export async function createKeyPair(key: string, pub: string): Promise<void> {
  await run(["keygen", "-out-key", key, "-out-pub", pub]);
}

export interface SignOptions {
  caCrt: string;
  caKey: string;
  publicKey: string;
  name: string;
  /** `address/bits`. */
  ip: string;
  groups: readonly string[];
  duration?: string;
  out: string;
}

export async function signCertificate(options: SignOptions): Promise<void> {
  const args = [
    "sign",
    "-ca-crt",
    options.caCrt,
    "-ca-key",
    options.caKey,
    "-in-pub",
    options.publicKey,
    "-name",
    options.name,
    "-ip",
    options.ip,
    "-out-crt",
    options.out,
  ];
  if (options.groups.length > 0) args.push("-groups", options.groups.join(","));
  if (options.duration !== undefined) args.push("-duration", options.duration);
  await run(args);
}

/** What `nebula-cert print -json` says of a certificate. */
export interface CertificateFacts {
  name: string;
  ips: string[];
  groups: string[];
  notBefore: string;
  notAfter: string;
  isCa: boolean;
  /** The CA's fingerprint. */
  issuer: string;
  fingerprint: string;
  /** The certified public key, hex (what re-signing needs; public). */
  publicKey: string;
}

interface PrintedCertificate {
  details: {
    name: string;
    ips: string[];
    groups: string[];
    notBefore: string;
    notAfter: string;
    isCa: boolean;
    issuer: string;
    publicKey: string;
  };
  fingerprint: string;
}

function toFacts(parsed: PrintedCertificate): CertificateFacts {
  const d = parsed.details;
  return {
    name: d.name,
    ips: d.ips,
    groups: d.groups,
    notBefore: d.notBefore,
    notAfter: d.notAfter,
    isCa: d.isCa,
    issuer: d.issuer,
    fingerprint: parsed.fingerprint,
    publicKey: d.publicKey,
  };
}

/** Every certificate of a file (a CA bundle holds several), in file order. */
export async function readCertificates(file: string): Promise<CertificateFacts[]> {
  const text = await run(["print", "-json", "-path", file]);
  // One JSON document per certificate, a line each.
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => toFacts(JSON.parse(line) as PrintedCertificate));
}

export async function readCertificate(file: string): Promise<CertificateFacts> {
  const [first] = await readCertificates(file);
  if (first === undefined) {
    throw new OgygiaError("ERR_OGYGIA_NEBULA", `${file} holds no certificate`);
  }
  return first;
}

/**
 * The public key file `nebula-cert sign -in-pub` reads, for a key taken
 * from a certificate (`publicKey`, hex): re-signing needs no copy of the
 * host's `host.pub`. The PEM label is nebula-cert's own.
 */
export function publicKeyPem(hex: string): string {
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new OgygiaError(
      "ERR_OGYGIA_NEBULA",
      `a certificate's public key is not 32 bytes of hex: ${hex}`,
    );
  }
  const base64 = Buffer.from(hex, "hex").toString("base64");
  return `-----BEGIN NEBULA X25519 PUBLIC KEY-----\n${base64}\n-----END NEBULA X25519 PUBLIC KEY-----\n`;
}
