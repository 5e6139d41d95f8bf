/**
 * The `ogygia fleet` commands: per-host credentials and write isolation,
 * run on the operator's machine with the admin's credentials. Each loads
 * `src/fleet`'s grants (and the backend's client) on first use.
 */

import { chmodSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import path from "node:path";

import { usageError, type CommandSpec } from "./args.js";
import { CONFIG_OPTION, JSON_OPTION, printResult as print, requireConfig, text } from "./shared.js";

const ADMIN_CONFIG_OPTION = {
  ...CONFIG_OPTION,
  description: "configuration file naming the admin's credentials",
} as const;

const loadConfig = (values: Record<string, unknown>) => requireConfig(values, "the fleet");

/** Writes `content` to `file` with mode 0600, through a temporary file renamed into place. */
function writeSecretFile(file: string, content: string): void {
  const temp = path.join(
    path.dirname(file),
    // Web Crypto's global, not node:crypto: that module would load at every
    // start of the CLI (this file is in the command table), for one command.
    `.${path.basename(file)}.${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}.tmp`,
  );
  try {
    writeFileSync(temp, content, { mode: 0o600, flag: "wx" });
    chmodSync(temp, 0o600);
    renameSync(temp, file);
  } catch (err) {
    try {
      unlinkSync(temp);
    } catch {
      // Never created, or already renamed.
    }
    throw err;
  }
}

const GRANT: CommandSpec = {
  path: ["fleet", "grant"],
  summary: "give a host its own credentials, allowed to write only its own keys",
  description:
    "Run with the admin's credentials. On etcd: create (or renew) HOST's user and a role\n" +
    "that reads the whole namespace and writes only <namespace>/HOST/. On ZooKeeper: give\n" +
    "HOST the digest identity HOST and set ACLs: the namespace readable by all and\n" +
    "administered by the admin, HOST's nodes writable by HOST and the admin only.\n" +
    "Both: HOST's update agent may read the rollout's plan and take slots and record\n" +
    "failed paths beside the namespace (<parent>/rollout/<name>/{slots,failed}/).\n" +
    "Granting again upgrades an older grant (with a new password; --keep-password keeps\n" +
    "the one in the password file, so the host's installed file stays valid).\n" +
    "A new password is written to the password file (0600), never printed: install it\n" +
    "on HOST as [ogygia.<backend>] password_file, with username = HOST.",
  options: {
    "password-file": {
      type: "string",
      valueName: "file",
      description: "where to write HOST's password (default: ./HOST.password)",
    },
    "keep-password": {
      type: "boolean",
      description: "grant again with the password already in the password file; write nothing",
    },
    config: ADMIN_CONFIG_OPTION,
    json: JSON_OPTION,
  },
  positionals: [{ name: "host", description: "the host's name, as it publishes" }],
  environment: [["OGYGIA_CONFIG", "configuration file to use instead of the default"]],
  examples: [
    "ogygia fleet grant web01 --password-file web01.password --config admin.toml",
    "ogygia fleet grant web01 --password-file web01.password --keep-password --config admin.toml",
  ],
  async run({ values, positionals }) {
    const host = positionals[0];
    if (host === undefined) throw usageError("HOST is required", GRANT);
    const config = await loadConfig(values);
    const { loadFleetGrants } = await import("../fleet/index.js");
    const grants = await loadFleetGrants();
    const file = path.resolve(text(values["password-file"]) ?? `${host}.password`);
    const keep = values["keep-password"] === true;
    // Read before anything changes on the server: a bad file changes nothing.
    const kept = keep ? grants.readKeptPassword(file) : undefined;
    const result = await grants.grantHost(config, host, { password: kept });
    if (!keep) writeSecretFile(file, `${result.password}\n`);
    const { password: _secret, ...shown } = result;
    await print(values.json === true, { ...shown, passwordFile: file, passwordKept: keep }, [
      `granted ${result.host}: ${result.backend} user ${result.username} may write only ` +
        `${result.namespace}/${result.host}/`,
      keep
        ? `password kept from ${file}: the host's password file stays valid`
        : `password written to ${file} (0600); on the host set username = "${result.username}" ` +
          "and password_file to it",
    ]);
    return 0;
  },
};

const REVOKE: CommandSpec = {
  path: ["fleet", "revoke"],
  summary: "take a host's write access away",
  description:
    "Run with the admin's credentials. On etcd: delete HOST's user and role. On ZooKeeper:\n" +
    "set HOST's nodes to readable by all and writable by the admin only, and take its\n" +
    "rollout rights away. Its keys stay; the rollout slot locks it holds are deleted.",
  options: { config: ADMIN_CONFIG_OPTION, json: JSON_OPTION },
  positionals: [{ name: "host", description: "the host's name, as it publishes" }],
  environment: [["OGYGIA_CONFIG", "configuration file to use instead of the default"]],
  examples: ["ogygia fleet revoke web01 --config admin.toml"],
  async run({ values, positionals }) {
    const host = positionals[0];
    if (host === undefined) throw usageError("HOST is required", REVOKE);
    const config = await loadConfig(values);
    const grants = await (await import("../fleet/index.js")).loadFleetGrants();
    const result = await grants.revokeHost(config, host);
    await print(values.json === true, result, [
      result.revoked
        ? `revoked ${result.host}: it can no longer write to ${result.backend}`
        : `${result.host} had no grant; nothing to revoke`,
    ]);
    return 0;
  },
};

const HOSTS: CommandSpec = {
  path: ["fleet", "hosts"],
  summary: "list the hosts that hold a grant",
  description:
    "Run with the admin's credentials: the hosts `ogygia fleet grant` made credentials for.",
  options: { config: ADMIN_CONFIG_OPTION, json: JSON_OPTION },
  environment: [["OGYGIA_CONFIG", "configuration file to use instead of the default"]],
  examples: ["ogygia fleet hosts --config admin.toml"],
  async run({ values }) {
    const config = await loadConfig(values);
    const grants = await (await import("../fleet/index.js")).loadFleetGrants();
    const result = await grants.grantedHosts(config);
    await print(
      values.json === true,
      result,
      result.hosts.length === 0 ? [`no host holds a grant in ${result.backend}`] : result.hosts,
    );
    return 0;
  },
};

export const FLEET_COMMANDS: readonly CommandSpec[] = [GRANT, REVOKE, HOSTS];
