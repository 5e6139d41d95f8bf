/**
 * The composition root: from a validated configuration to a running
 * server. Opens the store, loads the signing keys, builds the resolver
 * chain and the routes, and listens. The peer-to-peer layer adds its
 * resolvers to the chain and its routes to the list here.
 */

import type { IrisdConfig } from "./config.js";
import { openLocalStore } from "./local-store.js";
import type { IrisLogger } from "./log.js";
import { createHttpMetrics } from "./metrics.js";
import { createResolverChain } from "./resolve.js";
import { coreRoutes } from "./routes.js";
import { IrisServer, type BoundAddress } from "./server.js";
import { loadSigningKeys } from "./signing.js";

export interface IrisDaemon {
  readonly addresses: readonly BoundAddress[];
  /** Graceful stop: see `IrisServer.close`. Then closes the store. */
  stop(): Promise<void>;
}

/**
 * Starts serving. Throws OgygiaError when a key cannot be read, the store
 * database is missing or an address cannot be bound (nothing is left open).
 */
export async function startDaemon(config: IrisdConfig, log: IrisLogger): Promise<IrisDaemon> {
  const signingKeys = await loadSigningKeys(config.signing.secretKeyFiles);
  const local = openLocalStore({
    root: config.store.root,
    signingKeys,
    narMemoryCacheBytes: config.store.narMemoryCacheBytes,
  });
  const chain = createResolverChain([local]);
  const metrics = createHttpMetrics();
  const server = new IrisServer({
    routes: coreRoutes({
      chain,
      metrics,
      storeDir: local.db.location.storeDir,
      priority: config.server.priority,
    }),
    log,
    metrics,
    shutdownTimeoutMs: config.server.shutdownTimeoutSecs * 1000,
  });
  try {
    await server.listen(config.server.listen);
  } catch (err) {
    await chain.close();
    throw err;
  }
  log.info(
    {
      addresses: server.addresses.map((a) => a.url),
      storeRoot: config.store.root,
      storeDb: local.db.dbPath,
      validPaths: local.db.countValidPaths(),
      signingKeys: signingKeys.map((k) => k.name),
      config: config.path ?? null,
    },
    "listening",
  );
  return {
    addresses: server.addresses,
    async stop() {
      await server.close();
      await chain.close();
    },
  };
}
