/**
 * Per-host write isolation (`ogygia fleet grant | revoke | hosts`), run with
 * the admin's credentials: on etcd a user and a role per host (read the
 * namespace, write only `<namespace>/<host>/`); on ZooKeeper a digest
 * identity per host and ACLs (readable by all, writable by the host and the
 * admin). Loads the configured backend's adapter only when called.
 */

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

import { OgygiaError } from "../core/index.js";
import { whyUnreadable } from "./credentials.js";
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

/** What a kept password may be: one line of visible ASCII, as `grant` writes it. */
const KEPT_PASSWORD = /^[\x21-\x7e]{16,1024}$/;

/**
 * The password in `file` (its first line), for a grant that keeps the
 * host's password: the host's installed password file stays valid. Errors
 * name the file, never its content.
 */
export function readKeptPassword(file: string): string {
  const hint =
    "--keep-password re-grants with the password already in --password-file (the file an " +
    "earlier grant wrote); without it, grant makes a new one.";
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const why = whyUnreadable(err);
    throw new OgygiaError("ERR_OGYGIA_USAGE", `cannot keep the password in ${file}: ${why}`, {
      hint,
      exitCode: 2,
      cause: err,
    });
  }
  const password = text.split(/\r?\n/, 1)[0] ?? "";
  if (!KEPT_PASSWORD.test(password)) {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `cannot keep the password in ${file}: its first line is not a password ` +
        "(16 to 1024 visible ASCII characters, no spaces)",
      { hint, exitCode: 2 },
    );
  }
  return password;
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
  /** The host's password: to be written to its password file, never printed. */
  password: string;
}

/**
 * Creates or renews `host`'s credentials and isolation: with a new password,
 * or `options.password` (an existing grant's, kept).
 */
export async function grantHost(
  config: FleetConfig,
  host: string,
  options: { password?: string } = {},
): Promise<GrantResult> {
  checkHost(host);
  const { kind, settings } = selected(config);
  const password = options.password ?? newHostPassword();
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
