/**
 * The local store as `[store]` and `[signing]` configure it: what the
 * one-process daemon and every `[server] workers` process open alike.
 */

import type { IrisdConfig } from "./config.js";
import { loadSigningKeys, openLocalStore, type LocalStore } from "./store/index.js";

/**
 * One process's share of `[store] nar_memory_cache_bytes`: the whole with
 * one process; with `[server] workers = N`, the primary and each worker hold
 * their own cache, so each gets 1/(N + 1) and the daemon's total stays
 * within the configured bound (as `max_connections` is divided).
 */
export function narMemoryCacheShare(config: IrisdConfig): number {
  const processes = config.server.workers > 1 ? config.server.workers + 1 : 1;
  return Math.floor(config.store.narMemoryCacheBytes / processes);
}

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
    narMemoryCacheBytes: narMemoryCacheShare(config),
    logDir: config.store.logDir,
  });
  return { local, keyNames: signingKeys.map((key) => key.name) };
}
