/**
 * Signing served paths on the fly with the keys of `[signing]
 * secret_key_files`. A path gets a key's signature only when it has none by
 * that key name already; signatures are cached by fingerprint, so a path is
 * signed once however often its narinfo is rebuilt.
 */

import { OgygiaError } from "../../core/index.js";
import {
  pathFingerprint,
  readSecretKeyFile,
  signFingerprint,
  signatureKeyName,
  type SecretKey,
  type SignableInfo,
} from "../../nix/index.js";

/** Reads the secret keys; two files with the same key name are an error. */
export async function loadSigningKeys(files: readonly string[]): Promise<SecretKey[]> {
  const keys = await Promise.all(files.map((file) => readSecretKeyFile(file)));
  const seen = new Map<string, string>();
  keys.forEach((key, i) => {
    const file = files[i] ?? "";
    const other = seen.get(key.name);
    if (other !== undefined) {
      throw new OgygiaError(
        "ERR_OGYGIA_IRISD_CONFIG",
        `signing keys ${other} and ${file} have the same name '${key.name}'`,
        { hint: "Each key in [signing] secret_key_files needs its own name." },
      );
    }
    seen.set(key.name, file);
  });
  return keys;
}

export interface PathSigner {
  /** True when at least one key is configured: every valid path can then be signed. */
  readonly canSign: boolean;
  /** The stored signatures plus ours for keys that have not signed yet, sorted. */
  signatures(info: SignableInfo & { sigs: readonly string[] }): string[];
}

/** A signer for `keys`, remembering up to `maxEntries` signatures. */
export function createPathSigner(
  keys: readonly SecretKey[],
  options: { storeDir: string; maxEntries?: number },
): PathSigner {
  const maxEntries = options.maxEntries ?? 65_536;
  const cache = new Map<string, string>();
  const sign = (key: SecretKey, fingerprint: string): string => {
    const cacheKey = `${key.name}\n${fingerprint}`;
    let signature = cache.get(cacheKey);
    if (signature === undefined) {
      signature = signFingerprint(key, fingerprint);
      if (cache.size >= maxEntries) {
        const oldest = cache.keys().next();
        if (oldest.done !== true) cache.delete(oldest.value);
      }
      cache.set(cacheKey, signature);
    }
    return signature;
  };
  return {
    canSign: keys.length > 0,
    signatures(info) {
      if (keys.length === 0) return [...info.sigs];
      const signers = new Set(info.sigs.map(signatureKeyName));
      const missing = keys.filter((key) => !signers.has(key.name));
      if (missing.length === 0) return [...info.sigs];
      const fingerprint = pathFingerprint(info, options.storeDir);
      return [...info.sigs, ...missing.map((key) => sign(key, fingerprint))].sort();
    },
  };
}
