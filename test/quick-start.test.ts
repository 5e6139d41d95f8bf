/**
 * The README's quick start: `.ci/run` runs its two commands verbatim (read
 * from the README by `scripts/quick-start-commands`), so here: that the
 * README has exactly those two, that neither needs `sudo` to be present,
 * and that `scripts/install-test-deps` works as root and as a user: with
 * nothing to install it needs no privileges at all; with something missing
 * it escalates through sudo when there is one, and says what it needs when
 * there is none. Missing components are simulated with a PATH that lacks
 * them (a directory of links to the tools the script uses).
 */

import { chmod, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { REPO_ROOT, runCommand } from "./helpers/cli.js";
import { removeDir, tempDir } from "./helpers/process.js";

const SCRIPT = path.join(REPO_ROOT, "scripts/install-test-deps");
const NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"];
/** What the script looks for, but wrk (any one would do), plus what it runs. */
const TOOLS_BUT_WRK = [
  "bash",
  "id",
  "etcd",
  "etcdctl",
  "nix",
  "nginx",
  "zsh",
  "fish",
  "nebula-cert",
  "ip",
  "curl",
  "openssl",
  "zstd",
  "chromium",
];

let dir: string;

beforeAll(async () => {
  dir = await tempDir("quick-start");
  await chmod(dir, 0o755); // the scripts run as nobody
});

afterAll(async () => {
  await removeDir(dir);
});

/** A directory of links to `tools` (from /usr/bin or /bin), and nothing else. */
async function pathWith(name: string, tools: readonly string[]): Promise<string> {
  const bin = path.join(dir, name);
  await mkdir(bin, { recursive: true });
  for (const tool of tools) {
    const target = (await runCommand("/bin/sh", ["-c", `command -v ${tool}`])).stdout.trim();
    expect(target, `${tool} on this machine`).not.toBe("");
    await symlink(target, path.join(bin, tool));
  }
  return bin;
}

describe("the README's quick start", () => {
  it("has the two commands .ci/run runs, neither starting with sudo", async () => {
    const result = await runCommand(path.join(REPO_ROOT, "scripts/quick-start-commands"), []);
    expect(result.code).toBe(0);
    const commands = result.stdout.trimEnd().split("\n");
    expect(commands).toEqual([
      "npm ci && npm run build && ./bin/ogygia status",
      "scripts/install-test-deps && npm ci && npm test",
    ]);
    const ci = await readFile(path.join(REPO_ROOT, ".ci/run"), "utf8");
    expect(ci).toContain("scripts/quick-start-commands");
  });

  it("install-test-deps needs no privileges when everything is installed", async () => {
    const result = await runCommand("/usr/bin/setpriv", [...NOBODY, SCRIPT], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
  });

  it("install-test-deps escalates through sudo when something is missing", async () => {
    // Every tool but wrk, and a sudo that prints how it was called.
    const bin = await pathWith("with-sudo", TOOLS_BUT_WRK);
    await writeFile(path.join(bin, "sudo"), `#!/bin/bash\necho "sudo $*"\n`);
    await chmod(path.join(bin, "sudo"), 0o755);
    const result = await runCommand("/usr/bin/setpriv", [...NOBODY, SCRIPT], {
      env: { PATH: bin },
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("install-test-deps: installing wrk as root (sudo)\n");
    expect(result.stdout).toBe(`sudo -- ${SCRIPT}\n`);
  });

  it("install-test-deps says what it needs when it is not root and there is no sudo", async () => {
    const bin = await pathWith("no-sudo", TOOLS_BUT_WRK);
    const result = await runCommand("/usr/bin/setpriv", [...NOBODY, SCRIPT], {
      env: { PATH: bin },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "install-test-deps: need root to install: wrk (run as root, or install sudo)\n",
    );
  });
});
