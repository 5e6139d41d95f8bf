/**
 * `ogygia builders`: the machines file from the live fleet, once (with
 * `--check`, each builder probed), or kept current by the daemon
 * (`--watch --output FILE`); and the publisher's hook that publishes this
 * host's own entry.
 */

import type { Server } from "node:http";

import { loadContext, openBackend, type CommandOptions } from "../command/index.js";
import type { OgygiaConfig } from "../config/index.js";
import { OgygiaError } from "../core/index.js";
import { configuredBackend, describeBackends, openCoordinator } from "../fleet/index.js";
import { BuilderAnnouncer, localBuilderEntry, type AnnounceLogger } from "./announce.js";
import { BuildersDaemon, type BuildersLogger } from "./daemon.js";
import { compareBuilders, machinesLine, type Builder } from "./entry.js";
import { buildersOf, type MalformedEntry } from "./fleet.js";
import { createProber, type ProbeResult } from "./probe.js";

export interface BuildersOptions extends CommandOptions {
  /** Identity file for the machines file's third field and the probes (`-`: ssh's default). */
  sshKey: string;
  /** Probe each builder (`--check`). */
  check: boolean;
  probeTimeoutMs: number;
}

/** One builder in the list. */
export interface BuilderRow extends Builder {
  line: string;
  /** With `--check`: what the probe found. */
  probe?: ProbeResult;
}

/** What `ogygia builders` found. */
export interface BuildersList {
  host: string;
  /** Online builders other than this host, best first (with `--check`: those that answered). */
  builders: BuilderRow[];
  /** With `--check`: the builders whose probe failed. */
  failed: BuilderRow[];
  malformed: MalformedEntry[];
}

async function openFleet(options: CommandOptions) {
  const { source, config, detected } = await loadContext(options);
  const backend = await openBackend(config);
  if (!config || !backend) {
    throw new OgygiaError(
      "ERR_OGYGIA_BUILDERS",
      config
        ? `no fleet to read builders from: ${config.path} configures ${describeBackends("section", "nor")}`
        : `no configuration file at ${source.displayPath}; builders come from the fleet`,
      { hint: `Configure ${describeBackends("section", "or")}, or pass --config FILE.` },
    );
  }
  return { config, backend, host: detected.hostname };
}

/** Reads the fleet once and lists its builders, probing them with `check`. */
export async function listBuilders(options: BuildersOptions): Promise<BuildersList> {
  const { backend, host } = await openFleet(options);
  let found;
  try {
    found = buildersOf(await backend.readHosts(), host);
  } finally {
    await backend.close();
  }
  const rows: BuilderRow[] = found.builders
    .sort(compareBuilders)
    .map((b) => ({ ...b, line: machinesLine(b.entry, options.sshKey) }));
  if (!options.check) return { host, builders: rows, failed: [], malformed: found.malformed };
  const prober = await createProber({
    sshKey: options.sshKey,
    sshOptions: options.env.NIX_SSHOPTS,
    timeoutMs: options.probeTimeoutMs,
  });
  try {
    await Promise.all(
      rows.map(async (row) => {
        row.probe = await prober.probe(row.entry);
      }),
    );
  } finally {
    await prober.close();
  }
  return {
    host,
    builders: rows.filter((r) => r.probe?.ok === true),
    failed: rows.filter((r) => r.probe?.ok !== true),
    malformed: found.malformed,
  };
}

export interface BuildersDaemonRunOptions extends CommandOptions {
  output: string;
  sshKey: string;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  backoffBaseMs: number;
  metricsListen: { host: string; port: number } | undefined;
  log: BuildersLogger;
  /** Called with a function that stops the daemon (the CLI wires it to signals). */
  onStart?: (stop: () => void) => void;
}

/** Runs `ogygia builders --watch` until stopped. */
export async function runBuildersDaemon(options: BuildersDaemonRunOptions): Promise<void> {
  const { backend, host } = await openFleet(options);
  const prober = await createProber({
    sshKey: options.sshKey,
    sshOptions: options.env.NIX_SSHOPTS,
    timeoutMs: options.probeTimeoutMs,
  });
  // prom-client loads only in the daemon, not in the publisher that imports this module.
  const { createBuildersMetrics, serveMetrics } = await import("./metrics.js");
  const metrics = createBuildersMetrics();
  let server: Server | undefined;
  try {
    if (options.metricsListen) server = await serveMetrics(metrics, options.metricsListen);
    const daemon = new BuildersDaemon({
      backend,
      localHost: host,
      output: options.output,
      sshKey: options.sshKey,
      probe: prober.probe,
      probeIntervalMs: options.probeIntervalMs,
      backoffBaseMs: options.backoffBaseMs,
      log: options.log,
      metrics,
    });
    options.onStart?.(() => {
      daemon.stop();
    });
    await daemon.run();
  } finally {
    server?.close();
    await prober.close();
    await backend.close();
  }
}

/** A running announcer, or nothing to stop. */
export interface BuilderAnnouncement {
  stop(): Promise<void>;
}

/**
 * Starts publishing this host's builder entry when `[ogygia.builder]` is
 * configured (the publisher calls it); undefined when it is not, or when
 * the entry cannot be made (a host key that cannot be read: logged).
 */
export async function startBuilderAnnouncement(options: {
  config: OgygiaConfig;
  host: string;
  log: AnnounceLogger;
}): Promise<BuilderAnnouncement | undefined> {
  const { config, host, log } = options;
  const builder = config.builder;
  const selected = configuredBackend(config);
  if (!builder || !selected) return undefined;
  let entry;
  try {
    entry = await localBuilderEntry(builder, host);
  } catch (err) {
    // The host's states still matter more than its builds: publish them, say why not this.
    if (!(err instanceof OgygiaError)) throw err;
    log.error(
      { error: err.message, hint: err.hint },
      "cannot publish the builder entry; publishing the states without it",
    );
    return undefined;
  }
  const coordinator = await openCoordinator(selected.entry.kind, selected.settings);
  const announcer = new BuilderAnnouncer({
    coordinator,
    namespace: selected.settings.namespace,
    host,
    entry,
    leaseTtlMs: config.publish.leaseTtlSeconds * 1000,
    log,
  });
  announcer.start();
  return announcer;
}
