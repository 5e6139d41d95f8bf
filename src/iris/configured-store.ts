/**
 * The local store as `[store]` and `[signing]` configure it: what the
 * one-process daemon and every `[server] workers` process open alike.
 */

import type { IrisdConfig } from "./config.js";
import { loadSigningKeys, openLocalStore, type LocalStore } from "./store/index.js";

/**
 * Loads the signing keys, then opens the store read-only with the configured
 * caches. `keyNames`: the keys' names, for the start-up log line.
 */
export async function openConfiguredStore(
  config: IrisdConfig,
): Promise<{ local: LocalStore; keyNames: string[] }> {
  const signingKeys = await loadSigningKeys(config.signing.secretKeyFiles);
  const local = openLocalStore({
    root: config.store.root,
    signingKeys,
    narMemoryCacheBytes: config.store.narMemoryCacheBytes,
    logDir: config.store.logDir,
  });
  return { local, keyNames: signingKeys.map((key) => key.name) };
}
