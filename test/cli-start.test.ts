/**
 * How `bin/ogygia` starts: from the V8 startup snapshot when it fits the
 * node on PATH, from the plain bundle otherwise. Each test runs a copy of
 * the built package whose snapshot was "built" by a node wrapper that logs
 * its arguments, so the test sees which way the launcher went.
 */

import { copyFile, mkdir, readFile, symlink, utimes, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { REPO_ROOT, runCommand } from "./helpers/cli.js";
import { removeDir, tempDir } from "./helpers/process.js";
import { makeSystemRoot, type SystemRoot } from "./helpers/system-root.js";

const REV_A = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0";
const REV_B = "0f9e8d7c6b5a0f9e8d7c6b5a0f9e8d7c6b5a0f9e";

let dir: string;
let system: SystemRoot;
let version: string;
let packages = 0;

beforeAll(async () => {
  dir = await tempDir("start");
  system = await makeSystemRoot({ current: REV_A, booted: REV_A, nextboot: REV_B });
  version = (
    JSON.parse(await readFile(path.join(REPO_ROOT, "package.json"), "utf8")) as {
      version: string;
    }
  ).version;
  // Two nodes that are the same program but not the same file: "built" made
  // the snapshot, "other" did not.
  for (const name of ["built", "other"]) {
    await mkdir(path.join(dir, name));
    const wrapper = path.join(dir, name, "node");
    await writeFile(
      wrapper,
      `#!/bin/sh\necho "${name} $*" >> "$NODE_LOG"\nexec ${JSON.stringify(process.execPath)} "$@"\n`,
      { mode: 0o755 },
    );
  }
});

afterAll(async () => {
  await system.remove();
  await removeDir(dir);
});

interface PackageCopy {
  bin: string;
  blob: string;
  log: string;
}

/** A copy of the built package (launcher, bundle, snapshot "built" by `built/node`). */
async function packageCopy({ snapshot = true } = {}): Promise<PackageCopy> {
  packages += 1;
  const root = path.join(dir, `package-${packages}`);
  const files = ["package.json", "bin/ogygia", "dist/bundle/ogygia.cjs"];
  if (snapshot) files.push("dist/snapshot/ogygia.blob", "dist/snapshot/import.cjs");
  for (const file of files) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await copyFile(path.join(REPO_ROOT, file), path.join(root, file));
  }
  await symlink(path.join(REPO_ROOT, "node_modules"), path.join(root, "node_modules"));
  if (snapshot) {
    await symlink(path.join(dir, "built", "node"), path.join(root, "dist/snapshot/node"));
  }
  return {
    bin: path.join(root, "bin/ogygia"),
    blob: path.join(root, "dist/snapshot/ogygia.blob"),
    log: path.join(root, "node.log"),
  };
}

/** Runs the copy's launcher with `node` = `<nodeDir>/node` first on PATH. */
async function run(
  copy: PackageCopy,
  args: string[],
  { nodeDir = "built", env = {} }: { nodeDir?: string; env?: Record<string, string> } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; node: string }> {
  const result = await runCommand(copy.bin, args, {
    env: {
      PATH: `${path.join(dir, nodeDir)}:${process.env.PATH ?? ""}`,
      NODE_LOG: copy.log,
      ...env,
    },
  });
  const node = (await readFile(copy.log, "utf8").catch(() => "")).trim();
  await writeFile(copy.log, "");
  return { ...result, node };
}

const TABLE_ROW = `testhost.example.com  ${REV_A.slice(0, 12)}  ${REV_A.slice(0, 12)}  ${REV_B.slice(0, 12)}`;

describe("bin/ogygia start-up", () => {
  it("starts from the snapshot when the node on PATH built it", async () => {
    const copy = await packageCopy();
    const status = await run(copy, ["status", "--root", system.root]);
    expect(status.stderr).toBe("");
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(TABLE_ROW);
    expect(status.node).toMatch(/^built --snapshot-blob \S+\/dist\/snapshot\/ogygia\.blob /);

    // --version reads the package.json above the bundle named on the command line.
    const versionRun = await run(copy, ["--version"]);
    expect(versionRun.stdout).toBe(`${version}\n`);
    expect(versionRun.node).toContain("--snapshot-blob");
  });

  it("resolves a symbolic link to the launcher, as npm installs it", async () => {
    const copy = await packageCopy();
    const link = path.join(path.dirname(copy.log), "ogygia-link");
    await symlink(copy.bin, link);
    const result = await run({ ...copy, bin: link }, ["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.node).toContain("--snapshot-blob");
  });

  it("falls back to the bundle when there is no snapshot (the npm package ships none)", async () => {
    const copy = await packageCopy({ snapshot: false });
    const result = await run(copy, ["status", "--root", system.root]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(TABLE_ROW);
    expect(result.node).toMatch(/^built \S+\/dist\/bundle\/ogygia\.cjs status/);
  });

  it("falls back to the bundle when the node on PATH is not the one that built the snapshot", async () => {
    const copy = await packageCopy();
    const result = await run(copy, ["status", "--root", system.root], { nodeDir: "other" });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(TABLE_ROW);
    expect(result.node).toMatch(/^other \S+\/dist\/bundle\/ogygia\.cjs status/);
  });

  it("falls back to the bundle when the node was replaced after the snapshot was built", async () => {
    const copy = await packageCopy();
    await utimes(copy.blob, new Date("2001-01-01"), new Date("2001-01-01"));
    const result = await run(copy, ["--version"]);
    expect(result.stdout).toBe(`${version}\n`);
    expect(result.node).not.toContain("--snapshot-blob");
  });

  it("falls back to the bundle under NODE_OPTIONS, whose V8 flags node would refuse the snapshot for", async () => {
    const copy = await packageCopy();
    const env = { NODE_OPTIONS: "--max-old-space-size=256" };
    // Started directly, node refuses the snapshot (exit 14) ...
    const direct = await runCommand(
      process.execPath,
      ["--snapshot-blob", copy.blob, path.join(REPO_ROOT, "dist/bundle/ogygia.cjs"), "--version"],
      { env },
    );
    expect(direct.code).toBe(14);
    expect(direct.stderr).toContain("Failed to load the startup snapshot");
    // ... so the launcher does not offer it.
    const result = await run(copy, ["status", "--root", system.root], { env });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(TABLE_ROW);
    expect(result.node).not.toContain("--snapshot-blob");
  });

  it("keeps error output and exit codes the same from the snapshot", async () => {
    const copy = await packageCopy();
    const result = await run(copy, ["statuz"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "error: unknown command 'statuz'\nhint: did you mean 'status'? Run 'ogygia --help' for usage.\n",
    );
    expect(result.node).toContain("--snapshot-blob");
  });
});
