/**
 * Helpers shared by the peer-to-peer unit tests (in `src/iris/p2p/`): NARs
 * built in memory, keys, and signed or content-addressed narinfos for them.
 */

import { createHash, randomBytes } from "node:crypto";

import {
  contentAddressedPath,
  createTrustedKeys,
  encodeNix32,
  formatContentAddress,
  formatHash,
  generateSecretKey,
  hashFromDigest,
  parseSecretKey,
  parseStorePath,
  renderNarInfo,
  signPath,
  type NarInfo,
  type SecretKey,
  type TrustedKeys,
} from "../../src/nix/index.js";
import type { Logger } from "../../src/log/index.js";
import {
  openNarCache,
  renderPeerNarInfo,
  type NarCache,
  type NarCacheOptions,
} from "../../src/iris/p2p/index.js";
import { dirNode, fileNode, nar } from "./nix.js";

/** A logger that says nothing, for tests that assert on behaviour, not logs. */
export const QUIET_LOG: Logger = {
  fatal: () => undefined,
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  isLevelEnabled: () => false,
};

/** The NAR of a single regular file. */
export function narOfFile(contents: Buffer): Buffer {
  return nar(fileNode(contents));
}

/** The NAR of a directory holding one file `f`. */
export function narOfDirectory(contents: Buffer): Buffer {
  return nar(dirNode([["f", fileNode(contents)]]));
}

export function sha256(data: Buffer): Buffer {
  return createHash("sha256").update(data).digest();
}

/** A key pair and a trust set holding its public key. */
export function testKey(name: string): { secret: SecretKey; trusted: TrustedKeys } {
  const secret = parseSecretKey(generateSecretKey(name));
  return { secret, trusted: createTrustedKeys([secret.publicKey]) };
}

/** A made-up input-addressed path with this NAR, signed by `key` (unsigned without one). */
export function signedInfo(nar: Buffer, key?: SecretKey, name = "thing"): NarInfo {
  const info = unsignedInfo(`/nix/store/${encodeNix32(randomBytes(20))}-${name}`, nar);
  if (key !== undefined) info.sigs = [signPath(key, info)];
  return info;
}

/** The narinfo of `storePath` with this NAR, no references and no signature. */
function unsignedInfo(storePath: string, nar: Buffer): NarInfo {
  return {
    storePath,
    url: "unused",
    compression: "none",
    narHash: hashFromDigest("sha256", sha256(nar)),
    narSize: nar.length,
    references: [],
    sigs: [],
  };
}

/** A text content-addressed path (as a .drv is) holding `contents`. */
export function textInfo(contents: Buffer, name = "thing.drv"): NarInfo {
  const ca = { method: "text" as const, hash: hashFromDigest("sha256", sha256(contents)) };
  const storePath = contentAddressedPath(ca, name, []) ?? "";
  return { ...unsignedInfo(storePath, narOfFile(contents)), ca: formatContentAddress(ca) };
}

/** A narinfo as a peer serves it. */
export function narInfoText(info: NarInfo): string {
  const hashPart = info.storePath.slice(11, 43);
  return renderNarInfo({
    ...info,
    url: `nar/${hashPart}-x.nar`,
    fileHash: info.narHash,
    fileSize: info.narSize,
  });
}

export function hashPartOf(storePath: string): string {
  return parseStorePath(storePath).hashPart;
}

/**
 * Writes `nar` (of `info`) into `cache` as a verified download would and
 * stores it; `inMemory` hands the bytes to `store` too. Returns the entry's names.
 */
export async function putCacheEntry(
  cache: NarCache,
  nar: Buffer,
  info: NarInfo,
  options: { inMemory?: boolean } = {},
): Promise<{ hashPart: string; narHash: string }> {
  const narInfo = renderPeerNarInfo(info, "/nix/store");
  const temp = await cache.createTemp(narInfo);
  await temp.handle.write(nar, 0, nar.length, temp.offset);
  await temp.handle.close();
  const hashPart = parseStorePath(info.storePath).hashPart;
  const narHash = formatHash(info.narHash, "nix32", false);
  const fields = { hashPart, narHash, size: nar.length, storePath: info.storePath, narInfo };
  await cache.store(temp, fields, options.inMemory === true ? nar : undefined);
  return { hashPart, narHash };
}

/** A NAR cache in `dir` for tests: 64 MiB, a minute to idle, quiet; `options` override. */
export function openTestCache(
  dir: string,
  trusted: TrustedKeys,
  options: Partial<NarCacheOptions> = {},
): Promise<NarCache> {
  return openNarCache({
    dir,
    maxBytes: 64 * 1024 * 1024,
    timeToIdleMs: 60_000,
    trusted,
    storeDir: "/nix/store",
    log: QUIET_LOG,
    ...options,
  });
}
