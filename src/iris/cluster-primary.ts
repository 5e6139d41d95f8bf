/**
 * A daemon with workers (`[server] workers` above 1). The primary process
 * runs the whole daemon as one process would (local index and bloom
 * filter, peers and the registry watch, the NAR cache and its scrub,
 * metrics), but listens only on a private Unix socket, in a folder it
 * creates with mode 0700; node:cluster workers share the public listen
 * addresses (round-robin: the primary accepts, the workers serve) and
 * forward there what they do not answer from the local store.
 *
 * The first worker starts alone, so a listen error is reported once; the
 * others then share its sockets. A worker that dies is started again after
 * a backoff (logged); `stop` stops the workers gracefully, then the daemon.
 * `/metrics` asks every worker for its metrics and adds them up.
 */

import cluster, { type Worker } from "node:cluster";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { Backoff, OgygiaError, type OgygiaErrorCode } from "../core/index.js";
import { errorFields, type Logger } from "../log/index.js";
import { isFromWorker, type ToWorker, type WorkerFailure } from "./cluster-messages.js";
import type { IrisdConfig } from "./config.js";
import { startDaemon, type IrisDaemon } from "./daemon.js";
import { removeStaleSockets, type BoundAddress, type MetricsSnapshot } from "./http/index.js";

/** How long `/metrics` waits for a worker's numbers; a worker that does not answer is left out. */
const METRICS_TIMEOUT_MS = 2000;
/** A worker that ran this long before dying starts again without waiting. */
const HEALTHY_RUN_MS = 30_000;
/** Beyond the shutdown timeout, how long a stopping worker may take before SIGKILL. */
const STOP_GRACE_MS = 5000;

interface Slot {
  worker: Worker | undefined;
  listeningAt: number | undefined;
  restart: NodeJS.Timeout | undefined;
  backoff: Backoff;
}

function failureError(slot: number, failure: WorkerFailure): OgygiaError {
  return new OgygiaError(failure.code as OgygiaErrorCode, failure.message, {
    hint: failure.hint,
    exitCode: failure.exitCode,
  });
}

/** The workers: forks, restarts, metrics, stop. */
class WorkerPool {
  private readonly slots: Slot[];
  private stopping = false;
  /** Every worker listened once: from then on, a worker that exits is started again. */
  private started = false;
  private nextRequest = 0;
  private readonly waiting = new Map<number, (snapshot: MetricsSnapshot) => void>();
  addresses: BoundAddress[] = [];

  constructor(
    private readonly options: {
      config: IrisdConfig;
      privateSocket: string;
      log: Logger;
    },
  ) {
    this.slots = Array.from({ length: options.config.server.workers }, () => ({
      worker: undefined,
      listeningAt: undefined,
      restart: undefined,
      backoff: new Backoff({ initialMs: 500, maxMs: 30_000 }),
    }));
  }

  /** Starts every worker; resolves once all listen, rejects with the first one's failure. */
  async start(): Promise<void> {
    cluster.setupPrimary({ serialization: "advanced" });
    this.addresses = await this.fork(0);
    await Promise.all(this.slots.slice(1).map((_, i) => this.fork(i + 1)));
    this.started = true;
  }

  /** Forks the worker of `slot`; resolves with its addresses once it listens. */
  private fork(slot: number): Promise<BoundAddress[]> {
    const state = this.slots[slot];
    if (state === undefined) throw new Error(`no worker slot ${slot}`);
    const { log, config, privateSocket } = this.options;
    const worker = cluster.fork();
    state.worker = worker;
    state.listeningAt = undefined;
    return new Promise((resolve, reject) => {
      let failure: WorkerFailure | undefined;
      worker.on("message", (message: unknown) => {
        if (!isFromWorker(message)) return;
        if (message.type === "loaded") {
          const start: ToWorker = { type: "start", config, privateSocket, slot };
          worker.send(start);
        } else if (message.type === "listening") {
          state.listeningAt = performance.now();
          resolve(message.addresses);
        } else if (message.type === "failed") {
          failure = message.failure;
        } else {
          this.waiting.get(message.id)?.(message.snapshot);
        }
      });
      worker.on("error", (err) => {
        // A message to a worker that is going away: its exit is handled below.
        log.debug({ worker: slot, ...errorFields(err) }, "cannot reach a worker");
      });
      worker.once("exit", (code, signal) => {
        if (state.worker === worker) state.worker = undefined;
        // Node's types say string; it is null when the worker exited by itself.
        const killedBy = signal as string | null;
        const listened = state.listeningAt !== undefined;
        if (!listened) {
          reject(
            failure === undefined
              ? new OgygiaError(
                  "ERR_OGYGIA_IRISD",
                  `worker ${slot} exited (${killedBy ?? `status ${code}`}) before it listened`,
                )
              : failureError(slot, failure),
          );
        }
        // At start, a failure is the daemon's (reported once by the caller), not a restart.
        if (this.stopping || !this.started) return;
        if (listened && performance.now() - (state.listeningAt ?? 0) > HEALTHY_RUN_MS) {
          state.backoff.reset();
        }
        const delay = state.backoff.next();
        log.warn(
          {
            worker: slot,
            workerPid: worker.process.pid,
            code,
            signal,
            ...(failure === undefined ? {} : { err: failure.message }),
            restartInMs: Math.round(delay),
          },
          "worker exited: starting it again",
        );
        state.restart = setTimeout(() => {
          state.restart = undefined;
          if (this.stopping) return;
          this.fork(slot).catch(() => {
            // Its exit was logged, and the next start is scheduled.
          });
        }, delay);
      });
    });
  }

  /** The live workers' metrics (a worker that does not answer in time is left out). */
  async snapshots(): Promise<MetricsSnapshot[]> {
    const asks = this.slots.map((slot) => {
      const worker = slot.worker;
      if (worker === undefined || slot.listeningAt === undefined || !worker.isConnected()) {
        return Promise.resolve(undefined);
      }
      const id = this.nextRequest++;
      return new Promise<MetricsSnapshot | undefined>((resolve) => {
        const timer = setTimeout(() => {
          this.waiting.delete(id);
          resolve(undefined);
        }, METRICS_TIMEOUT_MS);
        this.waiting.set(id, (snapshot) => {
          clearTimeout(timer);
          this.waiting.delete(id);
          resolve(snapshot);
        });
        const ask: ToWorker = { type: "metrics", id };
        worker.send(ask);
      });
    });
    return (await Promise.all(asks)).filter((s): s is MetricsSnapshot => s !== undefined);
  }

  /** Stops every worker gracefully (SIGKILL past the shutdown timeout); no restart after this. */
  async stop(): Promise<void> {
    this.stopping = true;
    const deadline = this.options.config.server.shutdownTimeoutSecs * 1000 + STOP_GRACE_MS;
    await Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.restart);
        const worker = slot.worker;
        if (worker === undefined || worker.isDead()) return;
        const exited = new Promise<void>((resolve) => {
          worker.once("exit", () => {
            resolve();
          });
        });
        if (worker.isConnected()) {
          const stop: ToWorker = { type: "stop" };
          worker.send(stop);
        } else {
          worker.process.kill("SIGTERM");
        }
        const timer = setTimeout(() => {
          worker.process.kill("SIGKILL");
        }, deadline);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

/** Where the private socket's folder goes: systemd's RuntimeDirectory when there is one. */
function runtimeBase(): string {
  const runtime = process.env.RUNTIME_DIRECTORY?.split(":")[0];
  return runtime === undefined || runtime === "" ? os.tmpdir() : runtime;
}

/**
 * Starts the daemon in this (primary) process on a private socket, then the
 * workers on the public addresses; resolves once every worker listens (then
 * logs `listening`, with the public addresses).
 */
export async function startClusteredDaemon(config: IrisdConfig, log: Logger): Promise<IrisDaemon> {
  // mkdtemp makes the folder 0700: only this daemon's user can reach the socket.
  const dir = await mkdtemp(path.join(runtimeBase(), "ogygia-irisd-"));
  const privateSocket = path.join(dir, "primary.sock");
  const pool = new WorkerPool({ config, privateSocket, log });
  let listening: Record<string, unknown> = {};
  let daemon: IrisDaemon;
  try {
    daemon = await startDaemon(config, log, {
      listen: { host: "", port: 0, text: `unix:${privateSocket}`, socketPath: privateSocket },
      workers: config.server.workers,
      workerMetrics: () => pool.snapshots(),
      onListening(fields) {
        listening = fields;
      },
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  try {
    await removeStaleSockets(config.server.listen);
    await pool.start();
  } catch (err) {
    await pool.stop();
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  log.info(
    { ...listening, addresses: pool.addresses.map((a) => a.url), workers: config.server.workers },
    "listening",
  );
  return {
    addresses: pool.addresses,
    async stop() {
      await pool.stop();
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
