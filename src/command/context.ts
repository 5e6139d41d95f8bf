/**
 * What every command that reads the configuration starts from: where the
 * configuration is, the configuration itself, this host's name, and the
 * configured fleet backend. Backend clients are imported only when a
 * backend is opened, so local-only mode never loads them.
 */

import { statSync } from "node:fs";

import { hasErrorCode } from "../core/index.js";
import type { ConfigSource, OgygiaConfig } from "../config/index.js";
import {
  openFleetBackend,
  openFleetPublisher,
  type FleetBackend,
  type FleetPublisher,
  type PublisherOptions,
} from "../fleet/index.js";
import {
  DEFAULT_CONFIG_PATH,
  detectHostname,
  displayPathInRoot,
  resolveInRoot,
  type DetectedHostname,
  type HostnameEnvironment,
  type LinkMemo,
} from "../system/index.js";

/** The options every such command takes. */
export interface CommandOptions {
  /** Root under which system paths are resolved (`--root`). */
  root: string;
  /** `--config`, if given. */
  configFile?: string | undefined;
  env: NodeJS.ProcessEnv;
  /** For tests: how to detect the host name. */
  hostnameEnvironment?: Partial<HostnameEnvironment>;
  /** Detection already under way (the CLI starts it while the command's module loads). */
  hostname?: Promise<DetectedHostname>;
}

/** Where to read the configuration: `--config`, `$OGYGIA_CONFIG`, else the default under root. */
export async function configSource(
  options: Pick<CommandOptions, "root" | "configFile" | "env">,
  memo?: LinkMemo,
): Promise<ConfigSource> {
  const fromEnv = options.env.OGYGIA_CONFIG?.trim();
  const explicit = options.configFile ?? (fromEnv === "" ? undefined : fromEnv);
  if (explicit !== undefined) return { path: explicit, displayPath: explicit, explicit: true };
  const displayPath = displayPathInRoot(options.root, DEFAULT_CONFIG_PATH);
  try {
    return {
      path: await resolveInRoot(options.root, DEFAULT_CONFIG_PATH, memo),
      displayPath,
      explicit: false,
    };
  } catch (err) {
    // A loop under --root (a broken image, a bad mount): no configuration, as
    // the states in that tree are unreadable too; said, not a crash.
    if (!hasErrorCode(err, "ELOOP")) throw err;
    return {
      path: displayPath,
      displayPath,
      explicit: false,
      unreadable: `cannot read the default configuration ${displayPath}: too many levels of symbolic links; showing local data only`,
    };
  }
}

/** The configuration and the host name, both under way: await them when needed. */
export interface PendingContext {
  source: ConfigSource;
  /** Undefined when the default file does not exist (local-only mode). */
  config: Promise<OgygiaConfig | undefined>;
  detected: Promise<DetectedHostname>;
}

/**
 * Starts loading the configuration and detecting the host name at once, so
 * that a command can start more work (a fleet read) as soon as either is
 * ready. Await both promises: either may reject. `memo` shares the root's
 * links with the command's own reads of the root (see `LinkMemo`).
 */
export async function startContext(
  options: CommandOptions,
  memo?: LinkMemo,
): Promise<PendingContext> {
  const source = await configSource(options, memo);
  const config = loadConfigIfAny(source);
  const detected =
    options.hostname ?? detectHostname({ env: options.env, ...options.hostnameEnvironment });
  return { source, config, detected };
}

/**
 * The configuration module's `loadConfig`, imported only when there is a file
 * to read: a local-mode start (no default file) loads neither the schema nor
 * the parser, which are then not in the CLI's core bundle
 * (scripts/bundle-cli.js).
 */
async function loadConfigIfAny(source: ConfigSource): Promise<OgygiaConfig | undefined> {
  if (source.unreadable !== undefined) return undefined;
  if (!source.explicit && defaultFileMissing(source.path)) return undefined;
  const { loadConfig } = await import("../config/index.js");
  return loadConfig(source);
}

/**
 * True when `file` does not exist; false when it does or `stat` failed
 * otherwise (then `loadConfig` reports it). Asked without an exception.
 */
function defaultFileMissing(file: string): boolean {
  try {
    return statSync(file, { throwIfNoEntry: false }) === undefined;
  } catch {
    return false;
  }
}

/** A command's starting point, loaded. */
export interface CommandContext {
  source: ConfigSource;
  /** Undefined when the default file does not exist (local-only mode). */
  config: OgygiaConfig | undefined;
  detected: DetectedHostname;
}

/** Loads the configuration and detects the host name, in parallel. */
export async function loadContext(options: CommandOptions): Promise<CommandContext> {
  const pending = await startContext(options);
  const [config, detected] = await Promise.all([pending.config, pending.detected]);
  return { source: pending.source, config, detected };
}

/** Opens the configured backend for reading; undefined without a configuration or backend. */
export async function openBackend(
  config: OgygiaConfig | undefined,
): Promise<FleetBackend | undefined> {
  return config ? openFleetBackend(config) : undefined;
}

/** Opens the configured backend for publishing as one host; undefined when none is configured. */
export async function openPublisher(
  config: OgygiaConfig,
  options: PublisherOptions,
): Promise<FleetPublisher | undefined> {
  return openFleetPublisher(config, options);
}
