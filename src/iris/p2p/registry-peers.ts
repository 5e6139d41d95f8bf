/**
 * Peers from the fleet registry (`[peers] registry = true`): every host
 * whose publisher is alive and publishes `iris_url` is a peer, except this
 * host itself (by host name, or by its own advertised URL). The registry is
 * Ogygia's own fleet backend, opened from the CLI's configuration file (or
 * `[peers] ogygia_config`) and watched: a snapshot arrives after every change
 * (etcd's watch, ZooKeeper's watches), so a host that comes online is a peer
 * moments after its publisher writes `alive`, and one that stops (its
 * `alive` revoked or expired) is dropped.
 */

import { OgygiaError, checkHttpUrl, errorMessage } from "../../core/index.js";
import type { FleetSnapshot } from "../../fleet/index.js";
import type { Logger } from "../../log/index.js";

/** Who "self" is in the registry. */
export interface RegistrySelf {
  /** This host's key segment (the publisher's host name). */
  host: string | undefined;
  /** The URL this daemon advertises, if any. */
  url: string | undefined;
}

/** The peer URLs a snapshot names: alive hosts with a valid `iris_url`, self excluded, sorted. */
export function registryPeerUrls(snapshot: FleetSnapshot, self: RegistrySelf): string[] {
  const urls = new Set<string>();
  const own = self.url?.replace(/\/+$/, "");
  for (const [host, values] of snapshot.hosts) {
    if (host === self.host || !values.has("alive")) continue;
    const raw = values.get("iris_url");
    if (raw === undefined) continue;
    const url = Buffer.from(raw).toString("utf8").trim().replace(/\/+$/, "");
    if (url === "" || url === own || checkHttpUrl(url, { example: "" }) !== undefined) continue;
    urls.add(url);
  }
  return [...urls].sort();
}

export interface RegistryPeersOptions {
  /** Ogygia's configuration file; undefined: `$OGYGIA_CONFIG`, else the default path. */
  configFile: string | undefined;
  /** This daemon's advertised URL. */
  advertise: string | undefined;
  log: Logger;
  /** Called with the registry's peers after every change. */
  onUrls(urls: string[]): void;
}

export interface RegistryPeers {
  /** Where the registry is, for the `listening` line. */
  readonly description: string;
  close(): Promise<void>;
}

/**
 * Opens the fleet backend Ogygia is configured with and watches it. Throws
 * OgygiaError when there is no configuration or no backend in it.
 */
export async function watchRegistryPeers(options: RegistryPeersOptions): Promise<RegistryPeers> {
  // Loaded only with `registry = true`: the fleet clients are large.
  const { loadContext, openBackend } = await import("../../command/index.js");
  const context = await loadContext({
    root: "/",
    configFile: options.configFile,
    env: process.env,
  });
  const hint =
    "Set [peers] ogygia_config to Ogygia's configuration file (with the fleet backend), or set registry = false.";
  if (context.config === undefined) {
    throw new OgygiaError(
      "ERR_OGYGIA_IRISD_CONFIG",
      `[peers] registry = true, but there is no Ogygia configuration at ${context.source.displayPath}`,
      { hint },
    );
  }
  const backend = await openBackend(context.config);
  if (backend === undefined) {
    throw new OgygiaError(
      "ERR_OGYGIA_IRISD_CONFIG",
      `[peers] registry = true, but ${context.source.displayPath} configures no fleet backend`,
      { hint },
    );
  }
  const self: RegistrySelf = { host: context.detected.hostname, url: options.advertise };
  const description = `${backend.kind} ${backend.config.namespace}`;
  let failing = false;
  const watch = backend.watchHosts({
    onSnapshot(snapshot) {
      if (failing) options.log.info({ registry: description }, "fleet registry reachable again");
      failing = false;
      options.onUrls(registryPeerUrls(snapshot, self));
    },
    onError(error) {
      // Retried by the watch itself; peers found so far stay.
      if (!failing) {
        options.log.warn(
          { registry: description, error: errorMessage(error) },
          "cannot read the fleet registry; keeping the peers found so far",
        );
      }
      failing = true;
    },
  });
  options.log.info(
    { registry: description, self: self.host },
    "watching the fleet registry for peers",
  );
  return {
    description,
    async close() {
      await watch.close();
      await backend.close();
    },
  };
}
