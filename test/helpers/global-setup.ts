/**
 * Runs once before the integration tests: every real component they need must
 * be installed. A missing one fails the run; no test is skipped for it.
 */

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

import { REPO_ROOT } from "./cli.js";
import { isNixpkgsLib, nixpkgsLibPath } from "./nixos.js";

interface Requirement {
  what: string;
  check: () => boolean;
  /** The Debian package that provides it, or "" when `fix` says what to do. */
  install: string;
  /** What to run when no package provides it. */
  fix?: string;
}

function runs(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: "ignore", timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

const requirements: Requirement[] = [
  {
    what: "etcd (etcd --version)",
    check: () => runs("etcd", ["--version"]),
    install: "etcd-server",
  },
  {
    what: "ZooKeeper (/usr/share/java/zookeeper.jar and java)",
    check: () => existsSync("/usr/share/java/zookeeper.jar") && runs("java", ["-version"]),
    install: "zookeeper",
  },
  {
    what: "Chromium (/usr/bin/chromium, driven by the dashboard's browser tests)",
    check: () => existsSync("/usr/bin/chromium"),
    install: "chromium",
  },
  {
    what: "OpenSSH (/usr/sbin/sshd and ssh, the builders' tests)",
    check: () => existsSync("/usr/sbin/sshd") && runs("ssh", ["-V"]),
    install: "openssh-server",
  },
  { what: "Nix (nix --version)", check: () => runs("nix", ["--version"]), install: "nix-bin" },
  {
    what: "nix-instantiate (nix-instantiate --version)",
    check: () => runs("nix-instantiate", ["--version"]),
    install: "nix-bin",
  },
  {
    what: "zstd (zstd --version, irisd's compressed NARs)",
    check: () => runs("zstd", ["--version"]),
    install: "zstd",
  },
  {
    what: "Nebula (nebula-cert -version)",
    check: () => runs("nebula-cert", ["-version"]),
    install: "nebula",
  },
  {
    what: `nixpkgs' lib at ${nixpkgsLibPath()} (set $OGYGIA_NIXPKGS_LIB to a nixpkgs lib folder)`,
    check: () => isNixpkgsLib(nixpkgsLibPath()),
    install: "",
    fix: "export OGYGIA_NIXPKGS_LIB=<a nixpkgs checkout>/lib",
  },
  {
    what: "the built CLI (dist/bundle/ogygia.cjs and ogygia-lazy.cjs, its launcher and code caches in dist/code-cache)",
    check: () =>
      [
        "dist/bundle/ogygia.cjs",
        "dist/bundle/ogygia-lazy.cjs",
        "dist/bundle/launch.cjs",
        "dist/code-cache/ogygia.cache",
        "dist/code-cache/ogygia-lazy.cache",
      ].every((file) => existsSync(path.join(REPO_ROOT, file))),
    install: "",
    fix: "npm run build",
  },
];

export default function setup(): void {
  const missing = requirements.filter((r) => !r.check());
  if (missing.length === 0) return;
  const lines = missing.map((r) => `  - ${r.what}`);
  const packages = missing.map((r) => r.install).filter((p) => p !== "");
  const advice = [
    packages.length > 0 ? `apt-get install -y ${packages.join(" ")}` : "",
    ...missing.map((r) => r.fix ?? ""),
  ].filter((s) => s !== "");
  throw new Error(
    `integration tests need components that are missing:\n${lines.join("\n")}\nfix: ${advice.join(" && ")}`,
  );
}
