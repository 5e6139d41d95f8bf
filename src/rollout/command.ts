/**
 * What the CLI runs: the configuration, host name and fleet store opened
 * through `src/command`, then the operator's commands or the agent.
 */

import path from "node:path";

import { loadContext, openBackend, type CommandOptions } from "../command/index.js";
import type { OgygiaConfig } from "../config/index.js";
import { OgygiaError } from "../core/index.js";
import { configuredBackend, openCoordinator } from "../fleet/index.js";
import { runAgent, type UpdateSettings } from "./agent.js";
import type { Fleet } from "./operate.js";
import type { AgentRecord } from "./state-file.js";
import { planKey, rolloutPrefix } from "./store.js";

function noBackend(what: string): OgygiaError {
  return new OgygiaError(
    "ERR_OGYGIA_CONFIG_READ",
    `${what} needs a fleet store, and the configuration names none`,
    {
      hint: "configure [ogygia.etcd] or [ogygia.zookeeper], or name the file with --config",
    },
  );
}

/** Opens the configured fleet store for the rollout's keys. */
export async function openFleet(
  config: OgygiaConfig | undefined,
  what: string,
): Promise<Fleet & { close(): Promise<void> }> {
  const selected = config ? configuredBackend(config) : undefined;
  const backend = await openBackend(config);
  if (!selected || !backend) throw noBackend(what);
  const coordinator = await openCoordinator(selected.entry.kind, selected.settings);
  return {
    coordinator,
    backend,
    namespace: selected.settings.namespace,
    async close() {
      await Promise.allSettled([coordinator.close(), backend.close()]);
    },
  };
}

/** Runs the operator command `run` on the configured fleet. */
export async function withFleet<T>(
  options: CommandOptions,
  what: string,
  run: (fleet: Fleet) => Promise<T>,
): Promise<T> {
  const { config } = await loadContext(options);
  const fleet = await openFleet(config, what);
  try {
    return await run(fleet);
  } finally {
    await fleet.close();
  }
}

export interface UpdateCommandOptions extends CommandOptions {
  once: boolean;
  signal: AbortSignal;
  log: (line: string) => void;
}

/** `ogygia update`: the agent, until the signal (or, with `once`, the host is done). */
export async function runUpdateCommand(options: UpdateCommandOptions): Promise<AgentRecord | null> {
  const { config, detected } = await loadContext(options);
  const update = config?.update;
  if (!config || !update) throw noBackend("ogygia update");
  const fleet = await openFleet(config, "ogygia update");
  const settings: UpdateSettings = {
    stateDir: path.join(path.resolve(options.root), update.stateDir),
    substituters: update.substituters,
    trustedPublicKeys: update.trustedPublicKeys,
    probes: update.probes,
    httpProbes: update.httpProbes,
    checkUnits: update.checkUnits,
    healthDeadlineSeconds: update.healthDeadlineSeconds,
    activationTimeoutSeconds: update.activationTimeoutSeconds,
    pollIntervalMs: Math.round(update.pollIntervalSeconds * 1000),
    reboot: {
      policy: update.reboot,
      window: update.rebootWindow,
      command: update.rebootCommand,
    },
  };
  // Reached with the configuration the running system carries now, read
  // afresh: a new system that cuts the host off fails here.
  const reachBackend = async (): Promise<void> => {
    const { config: now } = await loadContext({ ...options, hostname: Promise.resolve(detected) });
    const selected = now ? configuredBackend(now) : undefined;
    if (!selected) throw noBackend("the health check");
    const coordinator = await openCoordinator(selected.entry.kind, selected.settings);
    try {
      await coordinator.get(planKey(rolloutPrefix(selected.settings.namespace)));
    } finally {
      await coordinator.close();
    }
  };
  try {
    return await runAgent({
      host: detected.hostname,
      root: options.root,
      namespace: fleet.namespace,
      coordinator: fleet.coordinator,
      backend: fleet.backend,
      settings,
      leaseTtlMs: config.publish.leaseTtlSeconds * 1000,
      reachBackend,
      log: options.log,
      signal: options.signal,
      once: options.once,
    });
  } finally {
    await fleet.close();
  }
}
