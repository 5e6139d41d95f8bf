/**
 * Nix signing keys and path signatures (Ed25519, libsodium layout).
 *
 * Key files are `<name>:<base64>`: 64 bytes for a secret key (seed followed
 * by the public key, as libsodium stores it), 32 for a public key. A path is
 * signed over its fingerprint
 * `1;<store path>;sha256:<nix32 nar hash>;<nar size>;<sorted refs, comma-joined>`
 * and the signature is written `<key name>:<base64 of 64 bytes>`.
 */

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from "node:crypto";
import { readFile } from "node:fs/promises";

import { OgygiaError, errorMessage } from "../core/index.js";
import { isContentAddressed } from "./content-address.js";
import { formatHash, type Hash } from "./hash.js";
import { DEFAULT_STORE_DIR, parseStorePath, sortStorePaths } from "./store-path.js";

// DER headers that turn a raw Ed25519 seed / public key into PKCS#8 / SPKI.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export interface PublicKey {
  readonly name: string;
  /** The 32 raw key bytes. */
  readonly raw: Buffer;
  readonly key: KeyObject;
}

export interface SecretKey {
  readonly name: string;
  readonly key: KeyObject;
  readonly publicKey: PublicKey;
}

/** Trusted public keys by name (Nix's `trusted-public-keys`). */
export type TrustedKeys = ReadonlyMap<string, PublicKey>;

/** The facts a path signature covers. */
export interface SignableInfo {
  storePath: string;
  narHash: Hash;
  narSize: number;
  references: readonly string[];
}

function keyError(source: string, reason: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_KEY", `${source}: ${reason}`, {
    cause,
    hint: "Nix key files look like 'name:base64', as written by 'nix key generate-secret'.",
  });
}

function splitKey(text: string, source: string, bytes: number, kind: string): [string, Buffer] {
  const trimmed = text.trim();
  if (trimmed === "") throw keyError(source, `the ${kind} key is empty`);
  const colon = trimmed.indexOf(":");
  if (colon < 0) throw keyError(source, `the ${kind} key has no 'name:' prefix`);
  const name = trimmed.slice(0, colon);
  const body = trimmed.slice(colon + 1);
  if (name === "") throw keyError(source, `the ${kind} key has an empty name`);
  if (/\s/.test(name)) throw keyError(source, `the ${kind} key name '${name}' contains whitespace`);
  if (body === "") throw keyError(source, `the ${kind} key '${name}' has no key material`);
  if (body.length % 4 !== 0 || !BASE64.test(body)) {
    throw keyError(source, `the ${kind} key '${name}' is not valid base64`);
  }
  const raw = Buffer.from(body, "base64");
  if (raw.length !== bytes) {
    const hint = raw.length === 32 && bytes === 64 ? " (is this the public key?)" : "";
    const hint2 = raw.length === 64 && bytes === 32 ? " (is this the secret key?)" : "";
    throw keyError(
      source,
      `the ${kind} key '${name}' has ${raw.length} bytes, expected ${bytes}${hint}${hint2}`,
    );
  }
  return [name, raw];
}

function publicKeyObject(raw: Buffer): KeyObject {
  return createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, raw]),
    format: "der",
    type: "spki",
  });
}

/** Parses a public key (`name:base64(32 bytes)`); throws ERR_OGYGIA_NIX_KEY saying what is wrong. */
export function parsePublicKey(text: string, source = "public key"): PublicKey {
  const [name, raw] = splitKey(text, source, 32, "public");
  let key: KeyObject;
  try {
    key = publicKeyObject(raw);
  } catch (err) {
    throw keyError(source, `the public key '${name}' is not an Ed25519 key: ${errorMessage(err)}`);
  }
  return { name, raw, key };
}

/** Parses a secret key (`name:base64(64 bytes)`); checks its public half matches its seed. */
export function parseSecretKey(text: string, source = "secret key"): SecretKey {
  const [name, raw] = splitKey(text, source, 64, "secret");
  const seed = raw.subarray(0, 32);
  const embedded = raw.subarray(32);
  let key: KeyObject;
  try {
    key = createPrivateKey({
      key: Buffer.concat([PKCS8_PREFIX, seed]),
      format: "der",
      type: "pkcs8",
    });
  } catch (err) {
    throw keyError(source, `the secret key '${name}' is not an Ed25519 key: ${errorMessage(err)}`);
  }
  const derived = createPublicKey(key).export({ format: "der", type: "spki" }).subarray(-32);
  if (!derived.equals(embedded)) {
    throw keyError(
      source,
      `the secret key '${name}' is corrupt: its public half does not match its seed`,
    );
  }
  return {
    name,
    key,
    publicKey: { name, raw: Buffer.from(derived), key: publicKeyObject(derived) },
  };
}

async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw keyError(file, `cannot read the key file: ${errorMessage(err)}`, err);
  }
}

/** Reads and parses a secret key file. */
export async function readSecretKeyFile(file: string): Promise<SecretKey> {
  return parseSecretKey(await readKeyFile(file), file);
}

/** Reads and parses a public key file. */
export async function readPublicKeyFile(file: string): Promise<PublicKey> {
  return parsePublicKey(await readKeyFile(file), file);
}

/** `name:base64` of a public key, as in `trusted-public-keys`. */
export function formatPublicKey(key: PublicKey): string {
  return `${key.name}:${key.raw.toString("base64")}`;
}

/** A new secret key file's text, as `nix key generate-secret --key-name <name>`. */
export function generateSecretKey(name: string): string {
  if (name === "" || name.includes(":") || /\s/.test(name)) {
    throw keyError("new key", `invalid key name '${name}'`);
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  return `${name}:${Buffer.concat([seed, pub]).toString("base64")}`;
}

/** A trusted-key set from keys or `name:base64` strings; a repeated name is an error. */
export function createTrustedKeys(keys: Iterable<PublicKey | string>): TrustedKeys {
  const map = new Map<string, PublicKey>();
  for (const entry of keys) {
    const key = typeof entry === "string" ? parsePublicKey(entry, "trusted public key") : entry;
    const existing = map.get(key.name);
    if (existing !== undefined && !existing.raw.equals(key.raw)) {
      throw keyError("trusted public keys", `two different keys are named '${key.name}'`);
    }
    map.set(key.name, key);
  }
  return map;
}

/** Nix's `ValidPathInfo::fingerprint`. */
export function pathFingerprint(info: SignableInfo, storeDir = DEFAULT_STORE_DIR): string {
  const storePath = parseStorePath(info.storePath, storeDir).path;
  if (info.narSize <= 0 || !Number.isSafeInteger(info.narSize)) {
    throw new OgygiaError(
      "ERR_OGYGIA_NIX_SIGNATURE",
      `cannot fingerprint ${storePath}: its NAR size is unknown`,
    );
  }
  if (info.narHash.algorithm !== "sha256") {
    throw new OgygiaError(
      "ERR_OGYGIA_NIX_SIGNATURE",
      `cannot fingerprint ${storePath}: its NAR hash is not SHA-256`,
    );
  }
  for (const ref of info.references) parseStorePath(ref, storeDir);
  const refs = sortStorePaths(info.references).join(",");
  return `1;${storePath};${formatHash(info.narHash, "nix32")};${info.narSize};${refs}`;
}

/** Signs a fingerprint: `<key name>:<base64 signature>`. */
export function signFingerprint(key: SecretKey, fingerprint: string): string {
  const signature = sign(null, Buffer.from(fingerprint, "utf8"), key.key);
  return `${key.name}:${signature.toString("base64")}`;
}

/** Signs a path's fingerprint. */
export function signPath(key: SecretKey, info: SignableInfo, storeDir = DEFAULT_STORE_DIR): string {
  return signFingerprint(key, pathFingerprint(info, storeDir));
}

/** The key name a signature claims, or undefined when it is not `name:base64`. */
export function signatureKeyName(signature: string): string | undefined {
  const colon = signature.indexOf(":");
  return colon > 0 ? signature.slice(0, colon) : undefined;
}

/** True when `signature` is valid for `fingerprint` under a key in `trusted`. */
export function verifyFingerprint(
  fingerprint: string,
  signature: string,
  trusted: TrustedKeys,
): boolean {
  const name = signatureKeyName(signature);
  if (name === undefined) return false;
  const key = trusted.get(name);
  if (key === undefined) return false;
  const body = signature.slice(name.length + 1);
  if (body.length !== 88 || !BASE64.test(body)) return false;
  const raw = Buffer.from(body, "base64");
  if (raw.length !== 64) return false;
  return verify(null, Buffer.from(fingerprint, "utf8"), key.key, raw);
}

export type SignatureVerdict =
  | { trusted: true; reason: "content-addressed"; signers: string[] }
  | { trusted: true; reason: "signed"; signers: string[] }
  | { trusted: false; reason: "unsigned"; signers: [] };

/**
 * Whether Nix would accept a path: it is content-addressed (its path follows
 * from `ca`), or at least one signature verifies under a trusted key.
 */
export function checkPathSignatures(
  info: SignableInfo & { sigs: readonly string[]; ca?: string | undefined },
  trusted: TrustedKeys,
  storeDir = DEFAULT_STORE_DIR,
): SignatureVerdict {
  // As Nix's checkSignatures: a real content address wins before any fingerprint.
  const contentAddressed = isContentAddressed(info, storeDir);
  if (contentAddressed && !(info.narSize > 0)) {
    return { trusted: true, reason: "content-addressed", signers: [] };
  }
  const fingerprint = pathFingerprint(info, storeDir);
  const signers = [
    ...new Set(
      info.sigs
        .filter((sig) => verifyFingerprint(fingerprint, sig, trusted))
        .map((sig) => signatureKeyName(sig) ?? ""),
    ),
  ];
  if (contentAddressed) return { trusted: true, reason: "content-addressed", signers };
  if (signers.length > 0) return { trusted: true, reason: "signed", signers };
  return { trusted: false, reason: "unsigned", signers: [] };
}
