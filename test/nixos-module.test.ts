/**
 * The flake, the package and the NixOS module (`nix/`): they parse, the
 * module evaluates for the README's example configurations (nixpkgs' real
 * lib, stub NixOS options), and what it renders passes the programs' own
 * strict parsers, as the system build checks it.
 */

import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { stringify } from "smol-toml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { REPO_ROOT, runCli, runCommand } from "./helpers/cli.js";
import { evaluateExamples, nixpkgsLibPath, runNix, type ExampleReport } from "./helpers/nixos.js";
import { removeDir, tempDir } from "./helpers/process.js";

const IRISD_BIN = path.join(REPO_ROOT, "bin/ogygia-irisd");
const CLI_DEFAULT_CONFIG = "/run/current-system/sw/share/ogygia/config.toml";

let report: { examples: Record<string, ExampleReport>; optionNames: string[] };
let dir: string;
let readmeExamples: Record<string, string> = {};

/** An example's report, failing the test when it is missing. */
function example(name: string): ExampleReport {
  const found = report.examples[name];
  if (found === undefined) throw new Error(`no example named ${name}`);
  return found;
}

function service(name: string, unit: string): Record<string, unknown> {
  const found = example(name).services[unit];
  if (found === undefined) throw new Error(`${name}: no service ${unit}`);
  return found.serviceConfig;
}

async function writeToml(name: string, settings: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, stringify(settings));
  return file;
}

/** The README's NixOS blocks that are modules (not flakes), by name `readme-<n>`. */
async function readmeModules(): Promise<Record<string, string>> {
  const readme = await readFile(path.join(REPO_ROOT, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```nix\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
  return Object.fromEntries(
    blocks
      .map((block, index) => [`readme-${index}`, block] as const)
      .filter(([, block]) => !block.includes("inputs"))
      // Paths to the reader's own files (`./nebula-ca/ca.crt`) become absolute
      // strings: the files exist in their repository, not here.
      .map(([name, block]) => [name, block.replace(/(?<=\s)\.\/([\w./-]+)/g, '"/readme/$1"')]),
  );
}

beforeAll(async () => {
  dir = await tempDir("ogygia-nixos-");
  readmeExamples = await readmeModules();
  report = (await evaluateExamples({
    ...readmeExamples,
    // A typo in irisd's freeform settings, and one in the publisher's.
    "irisd-typo": `{ ogygia.irisd = { enable = true; settings.peers.url = [ "http://10.0.0.2:35742" ]; }; }`,
    "publish-typo": `{ ogygia = { enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ]; publish.settings.lease_ttl = 5; }; }`,
    "publish-without-backend": `{ ogygia = { enable = true; publish.enable = true; }; }`,
    "dashboard-open": `{ ogygia = { enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ]; dashboard = { enable = true; listen = "0.0.0.0:35743"; tokenFile = "/run/keys/dashboard"; openFirewall = true; historyDays = 30; }; }; }`,
    "dashboard-without-token": `{ ogygia = { enable = true; etcd.endpoints = [ "http://127.0.0.1:2379" ]; dashboard = { enable = true; listen = "0.0.0.0:35743"; }; }; }`,
    "key-in-store": `{ ogygia.irisd = { enable = true; settings.signing.secret_key_files = [ "/nix/store/aaaa-key.secret" ]; }; }`,
    "irisd-unix": `{ ogygia.irisd = { enable = true; configureNixDaemon = true; openFirewall = true; settings.server.listen = [ "unix:/run/ogygia-irisd/irisd.sock" "127.0.0.1:35742" "unix:/srv/irisd/peers.sock" ]; }; }`,
    "irisd-zstd": `{ ogygia.irisd = { enable = true; compression = "zstd"; }; }`,
    "irisd-workers": `{ ogygia.irisd = { enable = true; workers = "auto"; }; }`,
    "irisd-unix-only": `{ ogygia.irisd = { enable = true; settings.server.listen = [ "unix:/run/ogygia-irisd/irisd.sock" ]; }; }`,
    "irisd-unix-only-nix-daemon": `{ ogygia.irisd = { enable = true; configureNixDaemon = true; settings.server.listen = [ "unix:/run/ogygia-irisd/irisd.sock" ]; }; }`,
  })) as unknown as typeof report;
}, 120_000);

afterAll(async () => {
  await removeDir(dir);
});

describe("Nix files", () => {
  it("every .nix file of the flake, the module and the tests parses with nix-instantiate --parse", async () => {
    const files = ["flake.nix"];
    for (const folder of ["nix", "nix/tests", "test/nix"]) {
      for (const name of await readdir(path.join(REPO_ROOT, folder))) {
        if (name.endsWith(".nix")) files.push(path.join(folder, name));
      }
    }
    expect(files).toEqual(
      expect.arrayContaining(["nix/module.nix", "nix/package.nix", "nix/tests/vm.nix"]),
    );
    for (const file of files) {
      await expect(runNix("nix-instantiate", ["--parse", file]), file).resolves.toBeTypeOf(
        "string",
      );
    }
  });

  it("the flake has the outputs the README promises, for both Linux systems", async () => {
    const flake = await readFile(path.join(REPO_ROOT, "flake.nix"), "utf8");
    for (const output of [
      "overlays.default",
      "packages = ",
      "apps = ",
      "nixosModules.default = import ./nix/module.nix",
      "checks = ",
      "formatter = ",
      '"x86_64-linux"',
      '"aarch64-linux"',
    ]) {
      expect(flake).toContain(output);
    }
  });
});

describe("the NixOS module, evaluated for the README's examples", () => {
  it("meets every shared expectation (nix/tests/expectations.nix) in every example", () => {
    for (const name of [
      "minimal",
      "dirty",
      "etcd-fleet",
      "zookeeper-fleet",
      "irisd-peers",
      "nebula",
      "disabled",
    ]) {
      expect(example(name).failures, name).toEqual([]);
      expect(example(name).failedAssertions, name).toEqual([]);
    }
  });

  it("without ogygia.enable changes nothing", () => {
    const disabled = example("disabled");
    expect(disabled.services).toEqual({});
    expect(disabled.systemPackages).toEqual([]);
    expect(disabled.pathsToLink).toEqual([]);
    expect(disabled.variables).toEqual({});
    expect(disabled.nixSettings).toEqual({ substituters: [], "trusted-public-keys": [] });
    expect(disabled.firewallTCPPorts).toEqual([]);
    // Every option the stub declares, not just those above: nothing differs
    // from a system that never imported the module.
    expect(disabled.changedOutsideOgygia).toEqual([]);
    expect(example("etcd-fleet").changedOutsideOgygia).toContain("systemd.services");
  });

  it("writes system.configurationRevision to share/ogygia/build-revision, or unknown", () => {
    expect(example("minimal").buildRevision).toEqual({
      destination: "/share/ogygia/build-revision",
      text: "0123456789abcdef0123456789abcdef01234567",
    });
    expect(example("dirty").buildRevision?.text).toBe("unknown");
    expect(example("minimal").pathsToLink).toContain("/share/ogygia");
    // Local-only: no publisher without a backend.
    expect(Object.keys(example("minimal").services)).toEqual([]);
  });

  it("renders the etcd fleet's config.toml with the README's keys and runs the publisher on it", () => {
    const etcd = example("etcd-fleet");
    expect(etcd.cliConfig?.settings).toEqual({
      ogygia: {
        domain: "example.com",
        etcd: {
          endpoints: [
            "http://etcd1.internal:2379",
            "http://etcd2.internal:2379",
            "http://etcd3.internal:2379",
          ],
          namespace: "/nixos/versions",
          timeout_seconds: 10,
        },
        publish: { lease_ttl_seconds: 10, resync_interval_seconds: 300 },
      },
    });
    const unit = etcd.services["ogygia-publish"];
    expect(unit?.after).toContain("network-online.target");
    expect(unit?.wants).toContain("network-online.target");
    expect(unit?.wantedBy).toContain("multi-user.target");
    expect(unit?.path).toEqual(["net-tools"]);
    expect(unit?.restartTriggers).toEqual([etcd.cliConfig?.path]);
    const config = service("etcd-fleet", "ogygia-publish");
    expect(config.ExecStart).toMatch(
      /^\/nix\/store\/[^ ]+-ogygia-0\.1\.0\/bin\/ogygia publish --config \/run\/current-system\/sw\/share\/ogygia\/config\.toml$/,
    );
    expect(config).toMatchObject({
      DynamicUser: true,
      ProtectSystem: "strict",
      ProtectHome: true,
      PrivateTmp: true,
      PrivateDevices: true,
      NoNewPrivileges: true,
      CapabilityBoundingSet: "",
      RestrictAddressFamilies: ["AF_UNIX", "AF_INET", "AF_INET6"],
      Restart: "on-failure",
    });
    expect(config).not.toHaveProperty("MemoryDenyWriteExecute");
  });

  it("renders a ZooKeeper fleet's section and publishes to it", () => {
    const zk = example("zookeeper-fleet");
    expect(zk.cliConfig?.settings).toEqual({
      ogygia: {
        domain: "example.com",
        zookeeper: {
          endpoints: ["zk1.internal:2181", "zk2.internal:2181", "zk3.internal:2181"],
          namespace: "/nixos/versions",
          timeout_seconds: 10,
        },
      },
    });
    expect(Object.keys(zk.services)).toEqual(["ogygia-publish"]);
  });

  it("runs irisd hardened, as Type=notify, with its checked config and keys as credentials", () => {
    const irisd = example("irisd-peers");
    const config = service("irisd-peers", "ogygia-irisd");
    expect(config.ExecStart).toBe(
      `${String(config.ExecStart).split(" ")[0]} --config ${irisd.irisdConfig?.path}`,
    );
    expect(String(config.ExecStart)).toMatch(/\/bin\/ogygia-irisd --config /);
    expect(config).toMatchObject({
      Type: "notify",
      NotifyAccess: "all",
      DynamicUser: true,
      CacheDirectory: "ogygia-irisd",
      StateDirectory: "ogygia-irisd",
      ProtectSystem: "strict",
      LoadCredential: ["signing-key-0:/var/lib/ogygia/cache-key.secret"],
    });
    expect(config.ReadOnlyPaths).toEqual(["/nix/store", "/nix/var/nix/db"]);
    expect(config.SystemCallFilter).toEqual(
      expect.arrayContaining(["@system-service", "setpriority"]),
    );
    expect(config).not.toHaveProperty("MemoryDenyWriteExecute");
    expect(irisd.irisdConfig?.settings).toEqual({
      server: { listen: ["10.0.0.1:35742"] },
      peers: { urls: ["http://10.0.0.2:35742", "http://10.0.0.3:35742"] },
      trust: { trusted_keys: ["cache.example.com-1:HQsjYdrcs3ilS/ngtlbTQXU4Xfsm+va5NN7yoK0wKMg="] },
      // The key is read from systemd's credentials, never from the store.
      signing: { secret_key_files: ["/run/credentials/ogygia-irisd.service/signing-key-0"] },
      cache: { max_size_bytes: 1073741824 },
    });
    expect(JSON.stringify(irisd.irisdConfig)).not.toContain("/var/lib/ogygia/cache-key.secret");
    expect(irisd.nixSettings).toEqual({
      substituters: ["http://10.0.0.1:35742"],
      "trusted-public-keys": ["cache.example.com-1:HQsjYdrcs3ilS/ngtlbTQXU4Xfsm+va5NN7yoK0wKMg="],
    });
    expect(irisd.firewallTCPPorts).toEqual([35742]);
    expect(irisd.variables).toEqual({ OGYGIA_IRISD_URL: "http://10.0.0.1:35742" });
  });

  it("adds the Nebula address to irisd's listen list and uses loopback for the local Nix", () => {
    const nebula = example("nebula");
    expect(nebula.irisdConfig?.settings.server).toEqual({
      listen: ["127.0.0.1:35742", "10.42.0.7:35742"],
    });
    expect(nebula.nixSettings.substituters).toEqual(["http://127.0.0.1:35742"]);
    expect(nebula.firewallTCPPorts).toEqual([]);
  });

  it("accepts unix: listen addresses: their folder made for the service, TCP ones for Nix and the firewall", () => {
    const unix = example("irisd-unix");
    expect(unix.failures).toEqual([]);
    expect(unix.failedAssertions).toEqual([]);
    expect(unix.irisdConfig?.settings.server).toEqual({
      listen: [
        "unix:/run/ogygia-irisd/irisd.sock",
        "127.0.0.1:35742",
        "unix:/srv/irisd/peers.sock",
      ],
    });
    expect(service("irisd-unix", "ogygia-irisd")).toMatchObject({
      RuntimeDirectory: ["ogygia-irisd"],
      RuntimeDirectoryMode: "0755",
      ReadWritePaths: ["/srv/irisd"],
      RestrictAddressFamilies: expect.arrayContaining(["AF_UNIX"]) as unknown,
    });
    expect(unix.nixSettings.substituters).toEqual(["http://127.0.0.1:35742"]);
    expect(unix.firewallTCPPorts).toEqual([35742]);
    expect(unix.variables).toEqual({ OGYGIA_IRISD_URL: "http://127.0.0.1:35742" });

    const only = example("irisd-unix-only");
    expect(only.failures).toEqual([]);
    expect(only.failedAssertions).toEqual([]);
    expect(service("irisd-unix-only", "ogygia-irisd")).toMatchObject({
      RuntimeDirectory: ["ogygia-irisd"],
    });
    expect(only.variables).toEqual({});

    expect(example("irisd-unix-only-nix-daemon").failedAssertions).toEqual([
      expect.stringContaining("configureNixDaemon needs a TCP listen address") as unknown,
    ]);
  });

  it("ogygia.irisd.compression sets server.compression only when it is not none", () => {
    const zstd = example("irisd-zstd");
    expect(zstd.failures).toEqual([]);
    expect(zstd.failedAssertions).toEqual([]);
    expect(zstd.irisdConfig?.settings.server).toEqual({
      listen: ["127.0.0.1:35742"],
      compression: "zstd",
    });
    expect(example("irisd-peers").irisdConfig?.settings.server).not.toHaveProperty("compression");
  });

  it("ogygia.irisd.workers sets server.workers and KillMode=mixed only when it is not 1", () => {
    const workers = example("irisd-workers");
    expect(workers.failures).toEqual([]);
    expect(workers.failedAssertions).toEqual([]);
    expect(workers.irisdConfig?.settings.server).toEqual({
      listen: ["127.0.0.1:35742"],
      workers: "auto",
    });
    expect(service("irisd-workers", "ogygia-irisd")).toMatchObject({ KillMode: "mixed" });
    expect(example("irisd-peers").irisdConfig?.settings.server).not.toHaveProperty("workers");
    expect(service("irisd-peers", "ogygia-irisd")).not.toHaveProperty("KillMode");
  });

  it("runs ogygia dashboard with its state folder, the token as a credential, and its port open", () => {
    const open = example("dashboard-open");
    expect(open.failedAssertions).toEqual([]);
    const config = service("dashboard-open", "ogygia-dashboard");
    expect(config.ExecStart).toMatch(
      /^\/nix\/store\/[^ ]+\/bin\/ogygia dashboard --config \/run\/current-system\/sw\/share\/ogygia\/config\.toml --listen 0\.0\.0\.0:35743 --state-dir \/var\/lib\/ogygia-dashboard --history-days 30 --token-file %d\/token$/,
    );
    expect(config).toMatchObject({
      StateDirectory: "ogygia-dashboard",
      LoadCredential: ["token:/run/keys/dashboard"],
      DynamicUser: true,
    });
    expect(open.firewallTCPPorts).toEqual([35743]);
    expect(example("dashboard-without-token").failedAssertions.join("\n")).toMatch(
      /ogygia\.dashboard\.listen = "0\.0\.0\.0:35743" is not a loopback address: set ogygia\.dashboard\.tokenFile/,
    );
  });

  it("refuses a publisher without a backend, and a signing key in the store", () => {
    expect(example("publish-without-backend").failedAssertions.join("\n")).toMatch(
      /ogygia\.publish\.enable needs a backend/,
    );
    expect(example("key-in-store").failedAssertions.join("\n")).toMatch(
      /secret_key_files: a key in the Nix store/,
    );
  });
});

describe("rendered settings checked by the programs' own parsers", () => {
  it("every rendered CLI config.toml passes `ogygia config check`, the command the build runs", async () => {
    const withConfig = Object.entries(report.examples).filter(
      ([name, r]) => r.cliConfig !== null && name !== "publish-typo",
    );
    expect(withConfig.map(([name]) => name)).toEqual(
      expect.arrayContaining(["minimal", "etcd-fleet", "zookeeper-fleet", "nebula"]),
    );
    for (const [name, r] of withConfig) {
      expect(r.cliConfig?.script).toContain('ogygia config check "$rendered"');
      const file = await writeToml(`${name}.toml`, r.cliConfig?.settings ?? {});
      const result = await runCli(["config", "check", file]);
      expect(result.stderr, name).toBe("");
      expect(result.code, name).toBe(0);
    }
  });

  it("every rendered irisd config passes `ogygia-irisd --check-config --no-key-files`", async () => {
    for (const name of ["irisd-peers", "nebula"]) {
      const r = example(name);
      expect(r.irisdConfig?.script).toContain(
        'ogygia-irisd --check-config --no-key-files --config "$rendered"',
      );
      const file = await writeToml(`${name}-irisd.toml`, r.irisdConfig?.settings ?? {});
      const result = await runCommand(IRISD_BIN, [
        "--check-config",
        "--no-key-files",
        "--config",
        file,
      ]);
      expect(result.stderr, name).toBe("");
      expect(result.code, name).toBe(0);
    }
  });

  it("an unknown key in ogygia.irisd.settings fails the check, naming the key", async () => {
    const file = await writeToml(
      "irisd-typo.toml",
      example("irisd-typo").irisdConfig?.settings ?? {},
    );
    const result = await runCommand(IRISD_BIN, [
      "--check-config",
      "--no-key-files",
      "--config",
      file,
    ]);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain("peers.url");
    expect(result.stderr).toContain(file);
  });

  it("an unknown key in ogygia.publish.settings fails `ogygia config check`, naming the key", async () => {
    const file = await writeToml(
      "publish-typo.toml",
      example("publish-typo").cliConfig?.settings ?? {},
    );
    const result = await runCli(["config", "check", file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("ogygia.publish.lease_ttl");
    expect(result.stderr).toContain(file);
  });

  it("the publisher's config path is the path the CLI reads by default", async () => {
    // With no --config and no $OGYGIA_CONFIG, `config check` names the default path.
    const result = await runCli(["config", "check"], { env: { OGYGIA_CONFIG: undefined } });
    // Either "is valid" (a NixOS host with the file) or "does not exist": both name the path.
    expect(result.stdout + result.stderr).toContain(CLI_DEFAULT_CONFIG);
    expect(service("etcd-fleet", "ogygia-publish").ExecStart).toContain(
      `--config ${CLI_DEFAULT_CONFIG}`,
    );
    expect(example("etcd-fleet").cliConfig?.script).toContain('"$out/share/ogygia/config.toml"');
  });
});

describe("the README's On NixOS section", () => {
  it("every NixOS module the README shows evaluates, with no failed assertion or expectation", () => {
    const names = Object.keys(readmeExamples);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      expect(example(name).failures, name).toEqual([]);
      expect(example(name).failedAssertions, name).toEqual([]);
    }
  });

  it("names only options the module declares, and every nix block in it parses", async () => {
    const readme = await readFile(path.join(REPO_ROOT, "README.md"), "utf8");
    const start = readme.indexOf("## On NixOS");
    expect(start).toBeGreaterThan(-1);
    const end = readme.indexOf("\n## ", start + 1);
    const section = readme.slice(start, end === -1 ? undefined : end);
    const named = new Set([...section.matchAll(/`(ogygia\.[A-Za-z_.]+)`/g)].map((m) => m[1] ?? ""));
    expect(named.size).toBeGreaterThan(10);
    for (const option of named) expect(report.optionNames, option).toContain(option);
    const blocks = [...section.matchAll(/```nix\n([\s\S]*?)```/g)].map((m) => m[1] ?? "");
    expect(blocks.length).toBeGreaterThan(0);
    for (const [index, block] of blocks.entries()) {
      const file = path.join(dir, `readme-${index}.nix`);
      await writeFile(file, block);
      await expect(runNix("nix-instantiate", ["--parse", file]), block).resolves.toBeTypeOf(
        "string",
      );
    }
  });
});

describe("the package (nix/package.nix and what npm packs)", () => {
  interface PackageArgs {
    pname: string;
    version: string;
    nodejs: string;
    npmBuildScript: string;
    postBuild: string;
    nativeBuildInputs: string[];
    env: Record<string, string>;
    npmConfigHook: string;
    installCheckPhase: string;
    postInstall: string;
    lockPackages: Record<string, { version?: string; resolved?: string; integrity?: string }>;
  }
  let args: PackageArgs;

  beforeAll(async () => {
    args = JSON.parse(
      await runNix("nix-instantiate", [
        "--eval",
        "--strict",
        "--json",
        "test/nix/package-args.nix",
        "--arg",
        "lib",
        `import ${nixpkgsLibPath()}`,
      ]),
    ) as PackageArgs;
  }, 120_000);

  it("builds better-sqlite3 from source with the Node its wrappers run, and bundles with esbuild", async () => {
    const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, "package.json"), "utf8")) as {
      name: string;
      version: string;
    };
    expect(args.pname).toBe(pkg.name);
    expect(args.version).toBe(pkg.version);
    expect(args.nodejs).toBe("nodejs");
    expect(args.nativeBuildInputs).toContain("python3");
    expect(args.env.npm_config_build_from_source).toBe("true");
    expect(args.npmConfigHook).toBe("importNpmLock.npmConfigHook");
    expect(args.npmBuildScript).toBe("bundle");
    expect(args.postBuild).toBe("npm run bundle:dashboard");
    // The install check opens a database with the same Node: the addon's ABI matches.
    expect(args.installCheckPhase).toContain("nodejs/bin/node");
    expect(args.installCheckPhase).toContain("better-sqlite3");
    // Only the addon of its build stays in the closure.
    expect(args.postInstall).toContain('rm -rf "$sqlite/build" "$sqlite/deps" "$sqlite/src"');
    expect(args.postInstall).toContain("better_sqlite3.node");
    // The CLI's V8 code cache, made by `npm run bundle` with this Node, is
    // installed beside the bundle, and the wrapper runs the shell launcher
    // with this Node first on PATH (the Node whose V8 takes the cache).
    expect(args.postInstall).toContain(
      'cp -a dist/code-cache "$out/lib/node_modules/ogygia/dist/code-cache"',
    );
    expect(args.postInstall).toMatch(
      /makeWrapper "\$out\/lib\/node_modules\/ogygia\/bin\/ogygia" "\$out\/bin\/ogygia" \\\s+--prefix PATH : nodejs\/bin/,
    );
  });

  it("fetches every locked dependency from the registry URL npm would use, checked by its integrity", async () => {
    const lock = JSON.parse(await readFile(path.join(REPO_ROOT, "package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string; integrity?: string }>;
    };
    const entries = Object.entries(args.lockPackages).filter(([key]) => key !== "");
    expect(entries.length).toBe(Object.keys(lock.packages).length - 1);
    for (const [key, entry] of entries) {
      const name = key.slice(key.lastIndexOf("node_modules/") + "node_modules/".length);
      const base = name.split("/").at(-1) ?? name;
      expect(entry.resolved, key).toBe(
        `https://registry.example/${name}/-/${base}-${entry.version ?? ""}.tgz`,
      );
      expect(entry.integrity, key).toBe(lock.packages[key]?.integrity);
      expect(entry.integrity, key).toMatch(/^sha512-/);
    }
    expect(args.lockPackages["node_modules/@esbuild/linux-x64"]?.resolved).toMatch(
      /\/@esbuild\/linux-x64\/-\/linux-x64-[0-9.]+\.tgz$/,
    );
  });

  it("npm pack ships the programs, the LICENSE and nothing of the tests, benchmarks, source maps or code cache", async () => {
    const result = await runCommand("npm", ["pack", "--dry-run", "--json"], {
      env: { npm_config_cache: path.join(dir, "npm-cache") },
    });
    expect(result.code, result.stderr).toBe(0);
    const [packed] = JSON.parse(result.stdout) as [{ files: { path: string }[] }];
    const files = packed.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining([
        "LICENSE",
        "package.json",
        "bin/ogygia",
        "bin/ogygia-irisd",
        "dist/bundle/ogygia.cjs",
        "dist/bundle/ogygia-lazy.cjs",
        "dist/bundle/launch.cjs",
        "dist/bundle/ogygia-irisd.js",
        "dist/bundle/dashboard/app.js",
        "dist/bundle/dashboard/app.css",
      ]),
    );
    const unexpected = files.filter(
      (f) =>
        !["LICENSE", "README.md", "package.json", "bin/ogygia", "bin/ogygia-irisd"].includes(f) &&
        !/^dist\/bundle\/(chunks\/)?[\w.-]+\.c?js$/.test(f) &&
        !/^dist\/bundle\/dashboard\/app\.(js|css)$/.test(f),
    );
    expect(unexpected).toEqual([]);
  });
});
