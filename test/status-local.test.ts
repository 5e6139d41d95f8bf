/**
 * `ogygia status` in local-only mode and with broken configurations, run as
 * a separate process against fake system roots.
 */

import { chmod, readlink, rm, symlink } from "node:fs/promises";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { OGYGIA_BIN, runCli, runCommand } from "./helpers/cli.js";
import { makeSystemRoot, writeConfig, type SystemRoot } from "./helpers/system-root.js";

const REV_A = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0";
const REV_B = "0f9e8d7c6b5a0f9e8d7c6b5a0f9e8d7c6b5a0f9e";

const roots: SystemRoot[] = [];
afterEach(async () => {
  await Promise.all(roots.splice(0).map((r) => r.remove()));
});

async function systemRoot(states: Parameters<typeof makeSystemRoot>[0] = {}): Promise<SystemRoot> {
  const root = await makeSystemRoot(states);
  roots.push(root);
  return root;
}

describe("ogygia status (local-only mode)", () => {
  it("prints the reference table for the three states", async () => {
    const { root } = await systemRoot({ current: REV_A, booted: REV_A, nextboot: REV_B });
    const result = await runCli(["status", "--root", root], {
      env: { OGYGIA_HOSTNAME: "hostname" },
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        "Ogygia config not found; showing local data only.",
        "Host      ⚡ current    🥾 booted     🔜 next boot",
        "-".repeat(50),
        "hostname  a1b2c3d4e5f6  a1b2c3d4e5f6  0f9e8d7c6b5a",
        "",
      ].join("\n"),
    );
  });

  it("shows unknown for missing links and missing revision files", async () => {
    const { root } = await systemRoot({ current: null, nextboot: REV_B });
    const result = await runCli(["status", "--root", root, "--json"]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      mode: "local",
      configPath: null,
      namespace: null,
      error: null,
      nothingPublished: false,
      hosts: [
        {
          host: "testhost.example.com",
          displayName: "testhost.example.com",
          local: true,
          current: null,
          booted: null,
          nextboot: REV_B,
          // Local-only mode knows nothing of a publisher.
          online: null,
          rebootRequired: null,
          updatedAt: null,
          currentSystem: expect.stringMatching(
            /^\/nix\/store\/[0-9a-z]{32}-nixos-system-test-\d+$/,
          ) as unknown,
          bootedSystem: null,
          nextbootSystem: expect.stringMatching(
            /^\/nix\/store\/[0-9a-z]{32}-nixos-system-test-\d+$/,
          ) as unknown,
        },
      ],
      warnings: [],
    });
  });

  it("says once, on stderr, when no state has a build-revision file, and names the option", async () => {
    const { root } = await systemRoot({ current: null, booted: null, nextboot: null });
    const text = await runCli(["status", "--root", root], {
      env: { OGYGIA_HOSTNAME: "fresh" },
    });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("fresh  unknown     unknown    unknown");
    const lines = text.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^warning: no build-revision file in any system state \(like .*\/run\/current-system\/sw\/share\/ogygia\/build-revision\)/,
    );
    expect(lines[0]).toContain("ogygia.versions.build_revision.enable");

    const json = await runCli(["status", "--root", root, "--json"], {
      env: { OGYGIA_HOSTNAME: "fresh" },
    });
    expect(json.code).toBe(0);
    expect(json.stderr).toBe("");
    const warnings = (JSON.parse(json.stdout) as { warnings: string[] }).warnings;
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("ogygia.versions.build_revision.enable");

    // One state with a file is enough to stay quiet.
    const partial = await systemRoot({ current: null, booted: null, nextboot: REV_B });
    const quiet = await runCli(["status", "--root", partial.root], {
      env: { OGYGIA_HOSTNAME: "fresh" },
    });
    expect(quiet.stderr).toBe("");
  });

  it("warns, not crashes, when the current system under --root is a symbolic link loop", async () => {
    const { root } = await systemRoot({ current: REV_A });
    const link = path.join(root, "run/current-system");
    await rm(link, { recursive: true, force: true });
    await symlink("/run/current-system", link);
    const result = await runCli(["status", "--root", root, "--json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { warnings: string[]; hosts: unknown[] };
    expect(report.warnings[0]).toBe(
      `cannot read the default configuration ${root}/run/current-system/sw/share/ogygia/config.toml: ` +
        "too many levels of symbolic links; showing local data only",
    );
    expect(report.warnings).toContain(
      `too many symbolic links resolving ${root}/run/current-system/sw/share/ogygia/build-revision`,
    );
    expect(report.hosts).toHaveLength(1);
  });

  it("follows a link change made by atomic replacement", async () => {
    const sys = await systemRoot({ current: REV_A });
    await sys.setState("current", REV_B);
    const result = await runCli(["status", "--root", sys.root, "--json"]);
    expect((JSON.parse(result.stdout) as { hosts: { current: string }[] }).hosts[0]?.current).toBe(
      REV_B,
    );
  });

  it("reports an unreadable revision file as a permission error, not a crash", async () => {
    const sys = await systemRoot({ current: REV_A, booted: REV_A, nextboot: REV_B });
    const file = path.join(sys.root, "run/booted-system/sw/share/ogygia/build-revision");
    // The link's target is absolute inside the root: /nix/store/...
    const booted = await readlink(path.join(sys.root, "run/booted-system"));
    await chmod(path.join(sys.root, booted, "sw/share/ogygia/build-revision"), 0o000);
    // Root reads anything; drop to nobody so the permission check applies.
    const result = await runCommand(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        OGYGIA_BIN,
        "status",
        "--root",
        sys.root,
      ],
      { env: { OGYGIA_HOSTNAME: "web01" } },
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("web01  a1b2c3d4e5f6  unreadable  0f9e8d7c6b5a");
    expect(result.stderr).toBe(`warning: permission denied reading ${file}\n`);
  });

  it("uses the configuration inside the current system under --root", async () => {
    const sys = await systemRoot({ booted: REV_A });
    await sys.writeDefaultConfig('[ogygia]\ndomain = "example.com"\n', REV_B);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_HOSTNAME: "web01.dc1.EXAMPLE.com" },
    });
    const configPath = path.join(sys.root, "run/current-system/sw/share/ogygia/config.toml");
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `No etcd or ZooKeeper configured in ${configPath}; showing local data only.`,
      "Host       ⚡ current    🥾 booted     🔜 next boot",
      "-".repeat(51),
      "web01.dc1  0f9e8d7c6b5a  a1b2c3d4e5f6  unknown",
      "",
    ]);
  });

  it("prints help for the command", async () => {
    const result = await runCli(["status", "--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("--json");
    expect(result.stdout).toContain("--root <dir>");
    expect(result.stdout).toContain("OGYGIA_HOSTNAME");
  });

  it("refuses an unknown option with a usage error", async () => {
    const result = await runCli(["status", "--jsn"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown option '--jsn'");
  });
});

describe("ogygia status with a broken configuration", () => {
  const cases: { name: string; toml: string; expected: RegExp }[] = [
    {
      name: "invalid TOML, by line and column",
      toml: '[ogygia.etcd]\nendpoints = ["http://a:2379"\n',
      expected: /config\.toml:3:1: invalid TOML: /,
    },
    {
      name: "an unknown key, by dotted key and line",
      toml: '[ogygia.etcd]\nendpoints = ["http://a:2379"]\nnamespaces = "/x"\n',
      expected: /config\.toml:3: ogygia\.etcd\.namespaces: unknown key/,
    },
    {
      name: "a wrong type",
      toml: "[ogygia.zookeeper]\nendpoints = [2181]\n",
      expected:
        /config\.toml:2: ogygia\.zookeeper\.endpoints\[0\]: expected a string, got the integer 2181/,
    },
    {
      name: "an empty endpoint list",
      toml: "[ogygia.etcd]\nendpoints = []\n",
      expected: /config\.toml:2: ogygia\.etcd\.endpoints: must not be empty/,
    },
  ];

  for (const { name, toml, expected } of cases) {
    it(`exits non-zero and names ${name}`, async () => {
      const file = await writeConfig(toml);
      const { root } = await systemRoot();
      const result = await runCli(["status", "--root", root], { env: { OGYGIA_CONFIG: file } });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(expected);
      expect(result.stderr).toContain(file);
    });
  }

  it("fails when $OGYGIA_CONFIG names a file that does not exist", async () => {
    const { root } = await systemRoot();
    const result = await runCli(["status", "--root", root, "--json"], {
      env: { OGYGIA_CONFIG: "/nonexistent/ogygia.toml" },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("configuration file /nonexistent/ogygia.toml does not exist");
  });

  it("prefers --config over $OGYGIA_CONFIG", async () => {
    const good = await writeConfig('[ogygia]\ndomain = "example.com"\n');
    const { root } = await systemRoot();
    const result = await runCli(["status", "--root", root, "--config", good, "--json"], {
      env: { OGYGIA_CONFIG: "/nonexistent/ogygia.toml" },
    });
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as { configPath: string }).configPath).toBe(good);
  });
});
