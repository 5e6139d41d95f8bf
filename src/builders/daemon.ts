/**
 * `ogygia builders --watch`: keeps a machines file current with the fleet.
 * Each fleet snapshot (the fleet watch delivers one within ~50 ms of a
 * change) updates the set of builders and rewrites the file atomically when
 * its text changes. Every builder is probed when it appears and then every
 * probe interval; a failed probe drops it from the file for
 * base·3^(n-1) (n failures in a row, at most 4: 60, 180, 540, 1620 s with
 * Hydra's base of 60 s), after which it is probed again and returns when it
 * answers.
 */

import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import path from "node:path";

import { OgygiaError, errorMessage } from "../core/index.js";
import type { FleetBackend, FleetSnapshot, FleetWatch } from "../fleet/index.js";
import { machinesFile, serializeBuilderEntry, type Builder } from "./entry.js";
import { buildersOf } from "./fleet.js";
import type { BuildersMetrics } from "./metrics.js";
import type { Prober, ProbeResult } from "./probe.js";

/** The structured logger the daemon writes to (pino's `Logger` fits). */
export interface BuildersLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Failures in a row past which the backoff stops growing. */
export const MAX_BACKOFF_STEPS = 4;

/** Hydra's backoff: base·3^(n-1) after n failures in a row, n capped at 4. */
export function backoffMs(failures: number, baseMs: number): number {
  if (failures <= 0) return 0;
  return baseMs * 3 ** (Math.min(failures, MAX_BACKOFF_STEPS) - 1);
}

export interface BuildersDaemonOptions {
  backend: FleetBackend;
  /** This host: never its own builder. */
  localHost: string;
  /** The machines file to keep current. */
  output: string;
  /** Identity file written in the machines file's third field. */
  sshKey: string;
  probe: Prober;
  probeIntervalMs: number;
  backoffBaseMs: number;
  log: BuildersLogger;
  metrics?: BuildersMetrics;
  /** For tests: a monotonic clock in milliseconds. */
  now?: () => number;
}

interface Tracked {
  builder: Builder;
  /** The entry as published, to notice a change. */
  serialized: string;
  failures: number;
  /** Not probed (and, after failures, not listed) before this time. */
  nextProbeAt: number;
  probing: boolean;
  lastProblem: string | undefined;
}

/** How often due probes are looked for. */
const TICK_MS = 200;

export class BuildersDaemon {
  private readonly options: BuildersDaemonOptions;
  private readonly now: () => number;
  private readonly tracked = new Map<string, Tracked>();
  /** Refused entries already warned about: host → the raw problem. */
  private readonly warned = new Map<string, string>();
  private readonly stopping = new AbortController();
  private watch: FleetWatch | undefined;
  private written: string | undefined;
  private writing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private readonly probes = new Set<Promise<void>>();

  constructor(options: BuildersDaemonOptions) {
    this.options = options;
    this.now = options.now ?? (() => performance.now());
  }

  /** Runs until `stop`; resolves once the watch is closed and pending probes finished. */
  async run(): Promise<void> {
    const { log, backend, output } = this.options;
    log.info(
      {
        output,
        backend: backend.kind,
        namespace: backend.config.namespace,
        probeIntervalMs: this.options.probeIntervalMs,
        backoffBaseMs: this.options.backoffBaseMs,
      },
      "builders daemon starting",
    );
    let failed: unknown;
    this.watch = backend.watchHosts({
      onSnapshot: (snapshot) => {
        this.options.metrics?.backendReachable(true);
        this.update(snapshot);
      },
      onError: (err) => {
        this.options.metrics?.backendReachable(false);
        if (err instanceof OgygiaError) {
          log.warn({ error: errorMessage(err) }, "fleet read failed; keeping the last list");
          return;
        }
        failed = err;
        this.stop();
      },
    });
    this.timer = setInterval(() => {
      this.probeDue();
    }, TICK_MS);
    await new Promise<void>((resolve) => {
      this.stopping.signal.addEventListener(
        "abort",
        () => {
          resolve();
        },
        { once: true },
      );
    });
    clearInterval(this.timer);
    await this.watch.close();
    await Promise.all(this.probes);
    await this.writing;
    log.info({}, "builders daemon stopped");
    if (failed !== undefined)
      throw failed instanceof Error ? failed : new Error(errorMessage(failed));
  }

  stop(): void {
    this.stopping.abort();
  }

  /** The builders now in the file, best first (for tests and metrics). */
  listed(): Builder[] {
    return [...this.tracked.values()].filter((t) => t.failures === 0).map((t) => t.builder);
  }

  private update(snapshot: FleetSnapshot): void {
    const { log } = this.options;
    const { builders, malformed } = buildersOf(snapshot, this.options.localHost);
    for (const { host, problem } of malformed) {
      if (this.warned.get(host) === problem) continue;
      this.warned.set(host, problem);
      log.warn({ builder: host, problem }, `skipping the malformed builder entry of ${host}`);
    }
    for (const host of this.warned.keys()) {
      if (!malformed.some((m) => m.host === host)) this.warned.delete(host);
    }
    this.options.metrics?.malformed(malformed.length);
    const seen = new Set<string>();
    for (const builder of builders) {
      seen.add(builder.host);
      const serialized = serializeBuilderEntry(builder.entry);
      const known = this.tracked.get(builder.host);
      if (known?.serialized === serialized) continue;
      if (known) {
        // A new entry (a restarted publisher, new settings): probe it again at once.
        known.builder = builder;
        known.serialized = serialized;
        known.nextProbeAt = 0;
        log.info({ builder: builder.host, uri: builder.entry.uri }, "builder entry changed");
      } else {
        this.tracked.set(builder.host, {
          builder,
          serialized,
          failures: 0,
          nextProbeAt: 0,
          probing: false,
          lastProblem: undefined,
        });
        log.info({ builder: builder.host, uri: builder.entry.uri }, "builder appeared");
      }
    }
    for (const host of [...this.tracked.keys()]) {
      if (seen.has(host)) continue;
      this.tracked.delete(host);
      log.info({ builder: host }, "builder left the fleet");
    }
    this.write();
    this.probeDue();
  }

  private probeDue(): void {
    if (this.stopping.signal.aborted) return;
    const now = this.now();
    for (const tracked of this.tracked.values()) {
      if (tracked.probing || now < tracked.nextProbeAt) continue;
      tracked.probing = true;
      const entry = tracked.builder.entry;
      const started = this.now();
      const run = this.options
        .probe(entry)
        .then((result) => {
          this.options.metrics?.probed(result.ok, (this.now() - started) / 1000);
          this.probed(tracked, result);
        })
        .finally(() => {
          tracked.probing = false;
          this.probes.delete(run);
        });
      this.probes.add(run);
    }
  }

  private probed(tracked: Tracked, result: ProbeResult): void {
    const { log } = this.options;
    // The builder left, or its entry changed, while the probe ran.
    if (this.tracked.get(tracked.builder.host) !== tracked) return;
    const host = tracked.builder.host;
    if (result.ok) {
      if (tracked.failures > 0) {
        log.info(
          { builder: host, failures: tracked.failures, version: result.version },
          "builder answers again; listed",
        );
      } else {
        log.debug({ builder: host, version: result.version }, "builder probed");
      }
      tracked.failures = 0;
      tracked.lastProblem = undefined;
      tracked.nextProbeAt = this.now() + this.options.probeIntervalMs;
    } else {
      tracked.failures += 1;
      tracked.lastProblem = result.reason;
      const waitMs = backoffMs(tracked.failures, this.options.backoffBaseMs);
      tracked.nextProbeAt = this.now() + waitMs;
      log.warn(
        { builder: host, reason: result.reason, failures: tracked.failures, retryInMs: waitMs },
        "builder probe failed; dropped until it answers",
      );
    }
    this.write();
  }

  /** Rewrites the file when its text changes; writes never overlap, the newest text wins. */
  private write(): void {
    const builders = this.listed();
    const text = machinesFile(builders, this.options.sshKey);
    const tracked = [...this.tracked.values()];
    this.options.metrics?.builders(builders.length, tracked.filter((t) => t.failures > 0).length);
    if (text === this.written) return;
    this.written = text;
    this.writing = this.writing
      .then(async () => {
        if (this.written !== text) return;
        await writeAtomically(this.options.output, text);
        this.options.metrics?.written();
        this.options.log.info(
          { output: this.options.output, builders: builders.map((b) => b.host) },
          "machines file written",
        );
      })
      .catch((err: unknown) => {
        // Try again with the next change; the old file stays whole.
        this.written = undefined;
        this.options.log.error(
          { output: this.options.output, error: errorMessage(err) },
          "cannot write the machines file",
        );
      });
  }
}

/** Writes `text` to a temporary file beside `file`, syncs it, and renames it into place. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`,
  );
  const handle = await open(temp, "wx", 0o644);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(temp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
