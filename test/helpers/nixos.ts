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
