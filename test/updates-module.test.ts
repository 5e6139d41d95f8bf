/**
 * The NixOS module's update options (`nix/modules/updates.nix`, imported by
 * `nix/module.nix`), evaluated with nixpkgs' lib and stub NixOS options: the
 * ogygia-update service (never restarted by a switch, which it runs itself)
 * and `[ogygia.update]` in the CLI configuration, checked by
 * `ogygia config check`.
 */

import { writeFile } from "node:fs/promises";
import path from "node:path";

import { stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { evaluateModule } from "./helpers/nixos.js";
import { removeDir, tempDir } from "./helpers/process.js";

const evaluate = evaluateModule;

let dir: string;

beforeAll(async () => {
  dir = await tempDir("updates-module");
});

afterAll(async () => {
  await removeDir(dir);
});

describe("ogygia.update (the host follows the fleet's rollouts)", () => {
  it("runs the agent, never restarted by a switch, with [ogygia.update] that the CLI accepts", async () => {
    const result =
      await evaluate(`{ ogygia = { enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ];
      update = { enable = true; probes = [ "systemctl is-active nginx" ]; healthDeadlineSeconds = 300;
        trustedPublicKeys = [ "fleet-1:AAAA" ]; reboot = "window"; rebootWindow = "23:30-01:00"; }; }; }`);
    expect(result.failedAssertions).toEqual([]);
    const service = result.services["ogygia-update"];
    expect(service?.restartIfChanged).toBe(false);
    expect(service?.stopIfChanged).toBe(false);
    expect(service?.path).toEqual(expect.arrayContaining(["nix", "systemd"]));
    expect(service?.serviceConfig.ExecStart).toMatch(
      /\/bin\/ogygia update --config \/run\/current-system/,
    );
    expect(result.cliSettings?.ogygia.update).toEqual({
      state_dir: "/var/lib/ogygia/update",
      substituters: ["http://127.0.0.1:35742"],
      trusted_public_keys: ["fleet-1:AAAA"],
      probes: ["systemctl is-active nginx"],
      http_probes: [],
      check_units: true,
      health_deadline_seconds: 300,
      reboot: "window",
      reboot_window: "23:30-01:00",
      reboot_command: ["systemctl", "reboot"],
    });
    const file = path.join(dir, "config.toml");
    await writeFile(file, stringify(result.cliSettings ?? {}));
    const check = await runCli(["config", "check", file]);
    expect(check.code, check.stderr).toBe(0);
  });

  it("refuses the agent without a fleet store, and adds nothing when disabled", async () => {
    const refused = await evaluate(`{ ogygia = { enable = true; update.enable = true; }; }`);
    expect(refused.failedAssertions).toEqual([
      expect.stringContaining("ogygia.update.enable needs ogygia.enable and a backend"),
    ]);
    const off = await evaluate(
      `{ ogygia = { enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ]; }; }`,
    );
    expect(off.services["ogygia-update"]).toBeUndefined();
    expect(off.cliSettings?.ogygia.update).toBeUndefined();
  });
});
