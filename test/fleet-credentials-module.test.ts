/**
 * The NixOS module's fleet credentials (`nix/modules/fleet-credentials.nix`,
 * imported by `nix/module.nix`), evaluated with nixpkgs' lib and stub NixOS
 * options: secrets reach the services through systemd's LoadCredential, the
 * generated config.toml names them by credential name only (never a path or
 * a secret), and inconsistent combinations are refused by assertions.
 */

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { evaluateModule, type ModuleReport } from "./helpers/nixos.js";
import { removeDir, tempDir } from "./helpers/process.js";

/** Evaluates the module with \`config\`, and reports the credential settings. */
async function evaluate(
  config: string,
): Promise<ModuleReport & { credentialSettings: Record<string, Record<string, string>> }> {
  const report = await evaluateModule(config, {
    credentialSettings: "c.ogygia.fleetCredentials.settings",
  });
  return {
    ...report,
    credentialSettings: report.extra.credentialSettings as Record<string, Record<string, string>>,
  };
}

const ETCD = `ogygia = { enable = true; etcd.endpoints = [ "https://10.0.0.1:2379" ]; publish.enable = true; }`;
const ZOOKEEPER = `ogygia = { enable = true; zookeeper = { enable = true; endpoints = [ "10.0.0.1:2181" ]; }; publish.enable = true; }`;
const ALL = `ogygia.fleetCredentials = { username = "web01"; passwordFile = "/run/keys/fleet-password";
  caFile = "/run/keys/ca.pem"; certFile = "/run/keys/web01.pem"; keyFile = "/run/keys/web01-key.pem"; }`;
let dir: string;

beforeAll(async () => {
  dir = await tempDir("fleet-credentials-module");
});

afterAll(async () => {
  await removeDir(dir);
});

describe("ogygia.fleetCredentials", () => {
  it("etcd: every file goes through LoadCredential and config.toml names credentials, not paths", async () => {
    const result = await evaluate(`{ ${ETCD}; ${ALL}; }`);
    expect(result.failedAssertions).toEqual([]);
    expect(result.services["ogygia-publish"]?.serviceConfig.LoadCredential).toEqual([
      "fleet-ca:/run/keys/ca.pem",
      "fleet-cert:/run/keys/web01.pem",
      "fleet-key:/run/keys/web01-key.pem",
      "fleet-password:/run/keys/fleet-password",
    ]);
    expect(result.cliSettings?.ogygia.etcd).toEqual({
      endpoints: ["https://10.0.0.1:2379"],
      namespace: expect.any(String) as unknown,
      timeout_seconds: expect.any(Number) as unknown,
      username: "web01",
      password_file: "fleet-password",
      ca_file: "fleet-ca",
      cert_file: "fleet-cert",
      key_file: "fleet-key",
    });
    // No file path of a secret (nor of the CA) is in the generated TOML.
    const toml = stringify(result.cliSettings ?? {});
    expect(toml).not.toContain("/run/keys");
    // The rendered file passes the CLI's own check, with the credentials where systemd puts them.
    const credentials = path.join(dir, "credentials");
    await mkdir(credentials, { recursive: true });
    for (const name of ["fleet-ca", "fleet-cert", "fleet-key", "fleet-password"]) {
      await writeFile(path.join(credentials, name), "placeholder\n");
    }
    const file = path.join(dir, "config.toml");
    await writeFile(file, toml);
    const check = await runCli(["config", "check", file], {
      env: { CREDENTIALS_DIRECTORY: credentials },
    });
    expect(check.code, check.stderr + check.stdout).toBe(0);
  });

  it("ZooKeeper: the digest user and its password file only", async () => {
    const result = await evaluate(`{ ${ZOOKEEPER};
      ogygia.fleetCredentials = { username = "web01"; passwordFile = "/run/keys/fleet-password"; }; }`);
    expect(result.failedAssertions).toEqual([]);
    expect(result.services["ogygia-publish"]?.serviceConfig.LoadCredential).toEqual([
      "fleet-password:/run/keys/fleet-password",
    ]);
    expect(result.cliSettings?.ogygia.zookeeper).toMatchObject({
      username: "web01",
      password_file: "fleet-password",
    });
    expect(result.cliSettings?.ogygia.zookeeper).not.toHaveProperty("ca_file");
  });

  it("the dashboard gets the same credentials as the publisher", async () => {
    const result = await evaluate(`{ ${ETCD}; ${ALL}; ogygia.dashboard.enable = true; }`);
    expect(result.failedAssertions).toEqual([]);
    expect(result.services["ogygia-dashboard"]?.serviceConfig.LoadCredential).toEqual(
      result.services["ogygia-publish"]?.serviceConfig.LoadCredential,
    );
  });

  it("every other service that talks to the fleet gets them: the update agent, builders, irisd's registry", async () => {
    const result = await evaluate(`{ ${ETCD}; ${ALL};
      ogygia.update.enable = true; ogygia.builders.enable = true;
      ogygia.irisd = { enable = true; settings.server.listen = [ "127.0.0.1:35742" ];
        settings.signing.secret_key_files = [ "/run/keys/irisd-signing.secret" ]; registry.enable = true; }; }`);
    expect(result.failedAssertions).toEqual([]);
    const expected = result.services["ogygia-publish"]?.serviceConfig.LoadCredential;
    expect(expected).toHaveLength(4);
    for (const service of ["ogygia-update", "ogygia-builders"]) {
      expect(result.services[service]?.serviceConfig.LoadCredential, service).toEqual(expected);
    }
    // irisd keeps its signing key beside them.
    expect(result.services["ogygia-irisd"]?.serviceConfig.LoadCredential).toEqual(
      expect.arrayContaining([...(expected as string[]), expect.stringMatching(/irisd-signing/)]),
    );
  });

  it("irisd without the registry does not talk to the fleet: no fleet credentials", async () => {
    const result = await evaluate(`{ ${ETCD}; ${ALL};
      ogygia.irisd = { enable = true; settings.server.listen = [ "127.0.0.1:35742" ]; }; }`);
    expect(result.failedAssertions).toEqual([]);
    expect(
      JSON.stringify(result.services["ogygia-irisd"]?.serviceConfig.LoadCredential ?? []),
    ).not.toContain("fleet-");
  });

  it("without credentials: no LoadCredential and no credential keys", async () => {
    const result = await evaluate(`{ ${ETCD}; }`);
    expect(result.failedAssertions).toEqual([]);
    expect(result.services["ogygia-publish"]?.serviceConfig).not.toHaveProperty("LoadCredential");
    const agent = await evaluate(`{ ${ETCD}; ogygia.update.enable = true; }`);
    expect(agent.services["ogygia-update"]?.serviceConfig).not.toHaveProperty("LoadCredential");
    expect(result.credentialSettings).toEqual({ etcd: {}, zookeeper: {} });
    expect(Object.keys(result.cliSettings?.ogygia.etcd ?? {}).sort()).toEqual([
      "endpoints",
      "namespace",
      "timeout_seconds",
    ]);
  });

  it("refuses a user without its password file, a certificate without its key, and secrets in the store", async () => {
    const userOnly = await evaluate(`{ ${ETCD}; ogygia.fleetCredentials.username = "web01"; }`);
    expect(userOnly.failedAssertions).toEqual([
      expect.stringContaining("username and passwordFile go together"),
    ]);
    const certOnly = await evaluate(
      `{ ${ETCD}; ogygia.fleetCredentials.certFile = "/run/keys/web01.pem"; }`,
    );
    expect(certOnly.failedAssertions).toEqual([
      expect.stringContaining("certFile and keyFile go together"),
    ]);
    const inStore = await evaluate(`{ ${ETCD}; ogygia.fleetCredentials = { username = "web01";
      passwordFile = "/nix/store/${"y".repeat(32)}-password"; }; }`);
    expect(inStore.failedAssertions).toEqual([
      expect.stringContaining("a secret in the Nix store is readable by every user"),
    ]);
  });
});
