/**
 * `ogygia publish`: finds the configuration, the host name and the backend
 * exactly as `ogygia status` does, then publishes once (`--once`) or runs
 * the daemon until SIGTERM or SIGINT.
 */

import { startBuilderAnnouncement } from "../builders/index.js";
import { loadContext, openPublisher, type CommandOptions } from "../command/index.js";
import type { OgygiaConfig } from "../config/index.js";
import { OgygiaError } from "../core/index.js";
import {
  describeBackends,
  isValidHostSegment,
  type BackendKind,
  type FleetPublisher,
  type StoredField,
} from "../fleet/index.js";
import { DEFAULT_CONFIG_PATH, type DetectedHostname } from "../system/index.js";
import { PublishDaemon, type DaemonLogger } from "./daemon.js";
import { watchNebulaCert } from "./nebula.js";
import { planPublication, readLocalPublication, storedValues, type Change } from "./plan.js";

export interface PublishOptions extends CommandOptions {
  /** For tests: the clock that stamps `updated_at`. */
  now?: () => Date;
}

/** What `ogygia publish --once` did. */
export interface PublishResult {
  host: string;
  hostnameSource: DetectedHostname["source"];
  backend: BackendKind;
  namespace: string;
  configPath: string;
  /** Each stored key: the value published (null: unknown, so absent) and what happened to it. */
  keys: { field: StoredField; value: string | null; change: Change }[];
  rebootRequired: boolean | null;
  updatedAt: string;
  /** Whether a running publisher holds `alive` for this host right now. */
  alive: boolean;
  warnings: string[];
}

/** Control characters would make a key no tool can print or type. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

interface Target {
  config: OgygiaConfig;
  host: string;
  hostnameSource: DetectedHostname["source"];
  publisher: FleetPublisher;
}

/** Loads the configuration, checks the host name and opens the publisher. */
async function openTarget(options: PublishOptions): Promise<Target> {
  const { source, config, detected } = await loadContext(options);
  if (!config) {
    throw new OgygiaError(
      "ERR_OGYGIA_PUBLISH",
      `no configuration file at ${source.displayPath}; the publisher needs one with ${describeBackends("section", "or")}`,
      {
        hint:
          `Enable ogygia with ${describeBackends("label", "or")} in the NixOS configuration (it writes ${DEFAULT_CONFIG_PATH}), ` +
          "or pass --config FILE.",
      },
    );
  }
  const host = detected.hostname;
  if (!isValidHostSegment(host) || CONTROL.test(host)) {
    throw new OgygiaError(
      "ERR_OGYGIA_PUBLISH",
      `host name ${JSON.stringify(host)} (from ${detected.source}) cannot be a key: it must be non-empty, not "." or "..", without "/" or control characters`,
      { hint: "Set OGYGIA_HOSTNAME to this host's name." },
    );
  }
  const publisher = await openPublisher(config, {
    host,
    leaseTtlSeconds: config.publish.leaseTtlSeconds,
  });
  if (!publisher) {
    throw new OgygiaError(
      "ERR_OGYGIA_PUBLISH",
      `nothing to publish to: ${config.path} configures ${describeBackends("section", "nor")}`,
      { hint: `Add an ${describeBackends("section", "or")} section with its endpoints.` },
    );
  }
  return { config, host, hostnameSource: detected.source, publisher };
}

/**
 * Publishes the host's states once and returns what was written. Leaves
 * `alive` alone: only a running daemon can keep it alive. Throws
 * `OgygiaError` when the backend cannot be reached or refuses.
 */
export async function publishOnce(options: PublishOptions): Promise<PublishResult> {
  const { config, host, hostnameSource, publisher } = await openTarget(options);
  try {
    const [values, local] = await Promise.all([
      publisher.readHost(),
      readLocalPublication(options.root, { nebulaCertFile: config.nebula?.certFile }),
    ]);
    const updatedAt = (options.now ?? (() => new Date()))().toISOString();
    const plan = planPublication(storedValues(values), local.values, updatedAt);
    await publisher.write(plan.changes);
    const reboot = local.values.reboot_required;
    return {
      host,
      hostnameSource,
      backend: publisher.kind,
      namespace: publisher.config.namespace,
      configPath: config.path,
      keys: plan.fields,
      rebootRequired: reboot === null ? null : reboot === "true",
      updatedAt,
      alive: values.has("alive"),
      warnings: local.problems,
    };
  } finally {
    await publisher.close({ revoke: false });
  }
}

export interface DaemonRunOptions extends PublishOptions {
  log: DaemonLogger;
  /** Called with a function that stops the daemon (the CLI wires it to signals). */
  onStart?: (stop: () => void) => void;
}

/**
 * Runs the publisher until stopped. Resolves after liveness was revoked (or
 * could not be, which is logged). Configuration problems throw before
 * anything starts; backend failures never end it.
 */
export async function runDaemon(options: DaemonRunOptions): Promise<void> {
  const { config, host, publisher } = await openTarget(options);
  const daemon = new PublishDaemon({
    publisher,
    root: options.root,
    log: options.log,
    leaseTtlSeconds: config.publish.leaseTtlSeconds,
    resyncIntervalSeconds: config.publish.resyncIntervalSeconds,
    ...(options.now ? { now: options.now } : {}),
    sources: { nebulaCertFile: config.nebula?.certFile },
  });
  // [ogygia.nebula] cert_file: a renewed certificate is republished at once.
  const stopNebulaWatch = watchNebulaCert(options.root, config.nebula?.certFile, {
    onChange: () => {
      daemon.markDirty();
    },
    onProblem: (problem) => {
      options.log.warn({ problem }, "cannot watch the Nebula certificate; relying on resync");
    },
  });
  // [ogygia.builder]: this host's builder entry, under a lease of the publisher's TTL.
  const builder = await startBuilderAnnouncement({ config, host, log: options.log });
  options.onStart?.(() => {
    daemon.stop();
  });
  try {
    await daemon.run();
  } finally {
    stopNebulaWatch();
    await builder?.stop();
  }
}
