/**
 * A worker process (`[server] workers` above 1): it serves the public
 * listen addresses, shared with the other workers through node:cluster,
 * and answers by itself what needs only the local store: `nix-cache-info`,
 * and the narinfos and NARs of paths the store serves (at `/` and
 * `/local/`), with its own read-only database connection, signing keys and
 * caches. Everything else, and every path the store does not have, goes to
 * the primary (`forward.ts`), which runs the whole daemon.
 *
 * The configuration comes from the primary, already validated; a failure
 * to start is sent back for the primary to report (once), not logged here.
 */

import { OgygiaError, errorMessage } from "../core/index.js";
import { createLogger, errorFields, type Logger } from "../log/index.js";
import { isToWorker, type FromWorker, type ToWorker } from "./cluster-messages.js";
import type { IrisdConfig } from "./config.js";
import { openConfiguredStore } from "./configured-store.js";
import {
  IrisServer,
  coreRoutes,
  createForwarder,
  createHttpMetrics,
  createResolverChain,
  forwardRoute,
  orForward,
  storeRoutes,
  type ConnectionLimits,
  type Forwarder,
  type Route,
} from "./http/index.js";
import { lowerHelperThreadsLogged } from "./thread-priority.js";

function send(message: FromWorker): void {
  // With a callback, a closed channel (the primary is gone) is not an 'error' event that would throw.
  process.send?.(message, undefined, {}, () => undefined);
}

/**
 * The limits of one worker: the connection cap and the memory bound of all
 * responses are the daemon's, shared out between its workers.
 */
export function workerLimits(limits: ConnectionLimits, workers: number): ConnectionLimits {
  return {
    ...limits,
    maxConnections: Math.max(1, Math.ceil(limits.maxConnections / workers)),
    maxBufferedBytesTotal: Math.max(1, Math.ceil(limits.maxBufferedBytesTotal / workers)),
  };
}

/** The routes a worker answers: local store first, the primary for the rest. */
function workerRoutes(
  config: IrisdConfig,
  options: {
    chain: ReturnType<typeof createResolverChain>;
    storeDir: string;
    forwarder: Forwarder;
  },
): Route[] {
  const { chain, storeDir, forwarder } = options;
  // With compression, a narinfo names the zstd file the primary keeps: the primary answers it.
  const compressed = config.server.compression !== "none";
  const store = [
    ...storeRoutes({ chain }),
    ...storeRoutes({ chain, prefix: "/local/", namePrefix: "local-", lookup: { localOnly: true } }),
  ].filter((route) => !(compressed && route.name.endsWith("narinfo")));
  const cacheInfo = coreRoutes({
    chain,
    metrics: createHttpMetrics({ defaults: false }),
    storeDir,
    priority: config.server.priority,
  }).filter((route) => route.name === "cache-info");
  return [
    ...cacheInfo,
    ...store.map((route) => orForward(route, forwarder)),
    forwardRoute(forwarder),
  ];
}

function nextMessage(): Promise<ToWorker> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if (!isToWorker(message)) return;
      process.off("message", onMessage);
      resolve(message);
    };
    process.on("message", onMessage);
  });
}

function failure(err: unknown): FromWorker {
  if (err instanceof OgygiaError) {
    return {
      type: "failed",
      failure: { code: err.code, message: err.message, hint: err.hint, exitCode: err.exitCode },
    };
  }
  return {
    type: "failed",
    failure: { code: "ERR_OGYGIA_IRISD", message: errorMessage(err), exitCode: 70 },
  };
}

/**
 * Runs a worker until the primary says stop (or SIGTERM/SIGINT, or the
 * primary is gone); resolves with the exit status.
 */
export async function runWorker(): Promise<number> {
  const started = nextMessage();
  send({ type: "loaded" });
  const start = await started;
  if (start.type !== "start") return 70;
  const { config } = start;
  const log: Logger = createLogger({
    name: "ogygia-irisd",
    level: config.server.logLevel,
    base: { worker: start.slot },
  });
  let server: IrisServer;
  let forwarder: Forwarder;
  let close: () => void;
  try {
    const { local } = await openConfiguredStore(config);
    close = () => {
      local.close();
    };
    forwarder = createForwarder({ socketPath: start.privateSocket, log });
    const metrics = createHttpMetrics();
    server = new IrisServer({
      routes: workerRoutes(config, {
        chain: createResolverChain([local]),
        storeDir: local.db.location.storeDir,
        forwarder,
      }),
      log,
      metrics,
      shutdownTimeoutMs: config.server.shutdownTimeoutSecs * 1000,
      limits: workerLimits(config.limits.connections, config.server.workers),
      shared: true,
    });
    process.on("message", (message: unknown) => {
      if (!isToWorker(message) || message.type !== "metrics") return;
      metrics.snapshot().then(
        (snapshot) => {
          send({ type: "metrics", id: message.id, snapshot });
        },
        (err: unknown) => {
          log.error(errorFields(err), "cannot read this worker's metrics");
        },
      );
    });
    await server.listen(config.server.listen);
  } catch (err) {
    send(failure(err));
    return err instanceof OgygiaError ? err.exitCode : 70;
  }
  send({ type: "listening", addresses: [...server.addresses] });
  log.debug({ addresses: server.addresses.map((a) => a.url) }, "worker listening");
  await lowerHelperThreadsLogged(config.server.helperThreadNice, log);

  // The primary says stop; SIGTERM/SIGINT (a terminal's Ctrl-C reaches every process) too.
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      resolve();
    };
    process.on("message", (message: unknown) => {
      if (isToWorker(message) && message.type === "stop") stop();
    });
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  await server.close();
  forwarder.close();
  close();
  return 0;
}
