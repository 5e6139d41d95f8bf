/**
 * The NixOS module's builders options (`nix/modules/builders.nix`, imported
 * by `nix/module.nix`), evaluated with nixpkgs' lib and stub NixOS options:
 * the builder user, the publisher's `[ogygia.builder]` section (checked by
 * `ogygia config check`), the ogygia-builders service and Nix's `builders`.
 */

import { writeFile } from "node:fs/promises";
import path from "node:path";

import { stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { evaluateModule } from "./helpers/nixos.js";
import { removeDir, tempDir } from "./helpers/process.js";

const evaluate = evaluateModule;

const FLEET = `ogygia = { enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ]; publish.enable = true; }`;
let dir: string;

beforeAll(async () => {
  dir = await tempDir("builders-module");
});

afterAll(async () => {
  await removeDir(dir);
});

describe("ogygia.builder (this host offers builds)", () => {
  it("makes a trusted builder user with the fleet's key and publishes [ogygia.builder]", async () => {
    const result = await evaluate(`{ ${FLEET}; ogygia.nebula.ipv4 = "10.42.0.7";
      ogygia.builder = { enable = true; authorizedKeys = [ "ssh-ed25519 AAAA fleet" ];
        maxJobs = 8; supportedFeatures = [ "kvm" "big-parallel" ]; }; }`);
    expect(result.failedAssertions).toEqual([]);
    expect(result.users["nix-builder"]).toMatchObject({
      isSystemUser: true,
      group: "nix-builder",
      openssh: { authorizedKeys: { keys: ["ssh-ed25519 AAAA fleet"] } },
    });
    expect(result.groups).toContain("nix-builder");
    expect(result.nixSettings["trusted-users"]).toEqual(["nix-builder"]);
    expect(result.openssh).toBe(true);
    // The publisher finds Nix's systems itself, so Nix is on its path.
    expect(result.services["ogygia-publish"]?.path).toContain("nix");
    expect(result.cliSettings?.ogygia.builder).toEqual({
      user: "nix-builder",
      protocol: "ssh-ng",
      address: "10.42.0.7",
      max_jobs: 8,
      speed_factor: 1,
      supported_features: ["kvm", "big-parallel"],
      mandatory_features: [],
      host_key_file: "/etc/ssh/ssh_host_ed25519_key.pub",
    });
    // The rendered file passes the CLI's own strict parser, as the system build checks it.
    const file = path.join(dir, "config.toml");
    await writeFile(file, stringify(result.cliSettings ?? {}));
    const check = await runCli(["config", "check", file]);
    expect(check.code, check.stderr).toBe(0);
  });

  it("refuses a builder without the publisher or without authorized keys", async () => {
    const result = await evaluate(
      `{ ogygia = { enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ]; publish.enable = false; builder.enable = true; }; }`,
    );
    expect(result.failedAssertions).toEqual([
      expect.stringContaining("ogygia.builder.enable needs ogygia.publish.enable"),
      expect.stringContaining("ogygia.builder.authorizedKeys is empty"),
    ]);
  });

  it("leaves users, sshd and the configuration alone when off", async () => {
    const result = await evaluate(`{ ${FLEET}; }`);
    expect(result.users).toEqual({});
    expect(result.openssh).toBe(false);
    expect(result.cliSettings?.ogygia).not.toHaveProperty("builder");
    expect(result.services).not.toHaveProperty("ogygia-builders");
    expect(result.nixSettings).not.toHaveProperty("builders");
  });
});

describe("ogygia.builders (this host builds on the fleet)", () => {
  it("runs ogygia builders --watch and points Nix at its file next to /etc/nix/machines", async () => {
    const result = await evaluate(`{ ${FLEET}; nix.distributedBuilds = true;
      ogygia.builders = { enable = true; sshKey = "/root/.ssh/nix-builder"; metricsListen = "127.0.0.1:35744"; }; }`);
    expect(result.failedAssertions).toEqual([]);
    const service = result.services["ogygia-builders"];
    expect(service?.serviceConfig.ExecStart).toBe(
      `/nix/store/${"x".repeat(32)}-ogygia/bin/ogygia builders --watch --config /run/current-system/sw/share/ogygia/config.toml ` +
        "--output /run/ogygia/nix-machines --probe-interval 60 --backoff-base 60 " +
        "--ssh-key /root/.ssh/nix-builder --metrics-listen 127.0.0.1:35744",
    );
    expect(service?.path).toEqual(["openssh", "net-tools"]);
    expect(result.nixSettings.builders).toBe("@/run/ogygia/nix-machines ; @/etc/nix/machines");
  });

  it("refuses the service without a fleet backend", async () => {
    const result = await evaluate(`{ ogygia = { enable = true; builders.enable = true; }; }`);
    expect(result.failedAssertions).toEqual([
      expect.stringContaining("ogygia.builders.enable needs ogygia.enable and a backend"),
    ]);
  });
});
