/**
 * Per-host write isolation (`ogygia fleet grant | revoke | hosts`), run with
 * the admin's credentials: on etcd a user and a role per host (read the
 * namespace, write only `<namespace>/<host>/`); on ZooKeeper a digest
 * identity per host and ACLs (readable by all, writable by the host and the
 * admin). Loads the configured backend's adapter only when called.
 */

import { randomBytes } from "node:crypto";

import { OgygiaError } from "../core/index.js";
import { isValidHostSegment } from "./keys.js";
import {
  configuredBackend,
  describeBackends,
  type BackendKind,
  type FleetConfig,
} from "./registry.js";
import type { BackendConfig } from "./types.js";

/** A new host password: 32 random bytes, base64url (43 characters). */
export function newHostPassword(): string {
  return randomBytes(32).toString("base64url");
}

function selected(config: FleetConfig): { kind: BackendKind; settings: BackendConfig } {
  const backend = configuredBackend(config);
  if (!backend) {
    throw new OgygiaError(
      "ERR_OGYGIA_CONFIG_INVALID",
      `the configuration names no fleet backend (${describeBackends("section", "or")})`,
      { hint: "Run it with the fleet's configuration and the admin's credentials." },
    );
  }
  return { kind: backend.entry.kind, settings: backend.settings };
}

function checkHost(host: string): void {
  if (!isValidHostSegment(host) || !/^[A-Za-z0-9._-]{1,128}$/.test(host)) {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `${JSON.stringify(host)} is not a host name a grant can be made for`,
      {
        hint: "Use the name the host publishes under: letters, digits, '.', '_' and '-'.",
        exitCode: 2,
      },
    );
  }
}

export interface GrantResult {
  backend: BackendKind;
  namespace: string;
  host: string;
  /** The user (etcd) or digest identity (ZooKeeper) the host authenticates as. */
  username: string;
  /** The host's new password: to be written to its password file, never printed. */
  password: string;
}

/** Creates or renews `host`'s credentials and isolation; a new password each time. */
export async function grantHost(config: FleetConfig, host: string): Promise<GrantResult> {
  checkHost(host);
  const { kind, settings } = selected(config);
  const password = newHostPassword();
  if (kind === "etcd") {
    await (await import("./etcd.js")).etcdGrantHost(settings, host, password);
  } else {
    await (await import("./zookeeper.js")).zooKeeperGrantHost(settings, host, password);
  }
  return { backend: kind, namespace: settings.namespace, host, username: host, password };
}

/** Takes `host`'s write access away; `revoked` false when it had no grant. */
export async function revokeHost(
  config: FleetConfig,
  host: string,
): Promise<{ backend: BackendKind; host: string; revoked: boolean }> {
  checkHost(host);
  const { kind, settings } = selected(config);
  const revoked =
    kind === "etcd"
      ? await (await import("./etcd.js")).etcdRevokeHost(settings, host)
      : await (await import("./zookeeper.js")).zooKeeperRevokeHost(settings, host);
  return { backend: kind, host, revoked };
}

/** The hosts that hold a grant. */
export async function grantedHosts(
  config: FleetConfig,
): Promise<{ backend: BackendKind; namespace: string; hosts: string[] }> {
  const { kind, settings } = selected(config);
  const hosts =
    kind === "etcd"
      ? await (await import("./etcd.js")).etcdGrantedHosts(settings)
      : await (await import("./zookeeper.js")).zooKeeperGrantedHosts(settings);
  return { backend: kind, namespace: settings.namespace, hosts };
}
