/**
 * Evaluates the NixOS module (`nix/module.nix`) with nixpkgs' lib and the stub
 * NixOS options of `test/nix/evaluate.nix`, through the real `nix-instantiate`.
 */

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

import { REPO_ROOT } from "./cli.js";

/**
 * nixpkgs' `lib` folder: `$OGYGIA_NIXPKGS_LIB`, else the copy beside the
 * repository (`../shared/vendor/nixpkgs-lib/lib`, as CI lays it out).
 */
export function nixpkgsLibPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.OGYGIA_NIXPKGS_LIB;
  if (fromEnv !== undefined && fromEnv !== "") return path.resolve(fromEnv);
  return path.resolve(REPO_ROOT, "../shared/vendor/nixpkgs-lib/lib");
}

/** Whether `dir` looks like nixpkgs' lib (has `default.nix` and `modules.nix`). */
export function isNixpkgsLib(dir: string): boolean {
  return existsSync(path.join(dir, "default.nix")) && existsSync(path.join(dir, "modules.nix"));
}

/** Runs a Nix command; resolves with its output, rejects with its stderr. */
export function runNix(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${command} ${args.join(" ")} failed:\n${stderr}`));
        else resolve(stdout);
      },
    );
  });
}

export interface ServiceReport {
  description: string;
  wantedBy: string[];
  wants: string[];
  after: string[];
  path: string[];
  restartTriggers: string[];
  serviceConfig: Record<string, unknown>;
}

export interface CheckedFile {
  /** The checked file's store path (a stub path under test). */
  path: string;
  /** The build script that checks and installs it. */
  script: string;
  /** The settings rendered to TOML, as JSON. */
  settings: Record<string, unknown>;
}

/** What `test/nix/evaluate.nix` reports for one example configuration. */
export interface ExampleReport {
  failures: string[];
  failedAssertions: string[];
  services: Record<string, ServiceReport>;
  systemPackages: string[];
  pathsToLink: string[];
  variables: Record<string, string>;
  buildRevision: { text: string; destination: string } | null;
  cliConfig: CheckedFile | null;
  irisdConfig: CheckedFile | null;
  nixSettings: { substituters: string[]; "trusted-public-keys": string[] };
  firewallTCPPorts: number[];
  /** `services.nebula.networks`, as nix/modules/nebula.nix sets it. */
  nebulaNetworks: Record<string, Record<string, unknown>>;
  /** NixOS options outside `ogygia.*` whose value differs from a system without the module. */
  changedOutsideOgygia: string[];
}

/**
 * Evaluates the module for the examples of `nix/tests/examples.nix`, plus
 * `extra` (name -> a NixOS module as a Nix expression).
 */
export async function evaluateExamples(
  extra: Record<string, string> = {},
): Promise<Record<string, ExampleReport>> {
  const extraExpr = `{ ${Object.entries(extra)
    .map(([name, module]) => `${JSON.stringify(name)} = ${module};`)
    .join(" ")} }`;
  const out = await runNix("nix-instantiate", [
    "--eval",
    "--strict",
    "--json",
    "test/nix/evaluate.nix",
    "--arg",
    "lib",
    `import ${nixpkgsLibPath()}`,
    "--arg",
    "extra",
    extraExpr,
  ]);
  return JSON.parse(out) as Record<string, ExampleReport>;
}

/** What {@link evaluateModule} reports of one system with the module imported. */
export interface ModuleReport {
  failedAssertions: string[];
  users: Record<string, Record<string, unknown>>;
  groups: string[];
  openssh: boolean;
  nixSettings: Record<string, unknown>;
  services: Record<
    string,
    {
      path: string[];
      serviceConfig: Record<string, unknown>;
      restartIfChanged: boolean;
      stopIfChanged: boolean;
    }
  >;
  /** The CLI's config.toml as the module renders it, or null without one. */
  cliSettings: { ogygia: Record<string, unknown> } | null;
  /** The `extra` fields asked for, by name. */
  extra: Record<string, unknown>;
}

/**
 * Evaluates `nix/module.nix` with the stub NixOS options of
 * `test/nix/module-stubs.nix` and `config` (a NixOS module as a Nix
 * expression). `extra` adds fields to the report: name -> a Nix expression
 * over the evaluated config `c` (e.g. `c.ogygia.fleetCredentials.settings`).
 */
export async function evaluateModule(
  config: string,
  extra: Record<string, string> = {},
): Promise<ModuleReport> {
  const extraFields = Object.entries(extra)
    .map(([name, expr]) => `${JSON.stringify(name)} = ${expr};`)
    .join(" ");
  const expr = `
    let
      lib = import ${nixpkgsLibPath()};
      inherit (import ./test/nix/module-stubs.nix { inherit lib; }) pkgs stubs;
      c = (lib.evalModules { modules = [ stubs { _module.args.pkgs = pkgs; } ./nix/module.nix (${config}) ]; }).config;
      cliFile = lib.findFirst (p: p.name or "" == "ogygia-config.toml") null c.environment.systemPackages;
    in {
      failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
      users = c.users.users;
      groups = builtins.attrNames c.users.groups;
      openssh = c.services.openssh.enable;
      nixSettings = c.nix.settings;
      services = lib.mapAttrs (_: s: {
        path = map (p: p.name) s.path;
        inherit (s) serviceConfig;
        restartIfChanged = s.restartIfChanged or true;
        stopIfChanged = s.stopIfChanged or true;
      }) c.systemd.services;
      cliSettings = if cliFile == null then null else cliFile.stub.env.rendered.stub.value;
      extra = { ${extraFields} };
    }`;
  return JSON.parse(
    await runNix("nix-instantiate", ["--eval", "--strict", "--json", "-E", expr]),
  ) as ModuleReport;
}
