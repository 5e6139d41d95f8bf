/**
 * How `bin/ogygia` starts: its launcher (`dist/bundle/launch.cjs`) compiles
 * the CLI's two files (the core `ogygia.cjs`, and `ogygia-lazy.cjs` on a
 * command's first need) with the V8 code caches the build made, and starts
 * the same program without them when there are none or V8 refuses them. Each
 * test runs a copy of the built package; whether V8 took a cache is asked of
 * the launcher's `compileFile` in a node process of its own, as a start would.
 */

import { copyFile, mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
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
});

afterAll(async () => {
  await system.remove();
  await removeDir(dir);
});

interface PackageCopy {
  bin: string;
  bundleDir: string;
  /** The core's code cache. */
  cache: string;
  /** The lazy file's code cache. */
  lazyCache: string;
}

/** A copy of the built package: launcher script, launcher, bundle files and code caches. */
async function packageCopy(): Promise<PackageCopy> {
  packages += 1;
  const root = path.join(dir, `package-${packages}`);
  const files = [
    "package.json",
    "bin/ogygia",
    "dist/bundle/launch.cjs",
    "dist/bundle/ogygia.cjs",
    "dist/bundle/ogygia-lazy.cjs",
    "dist/code-cache/ogygia.cache",
    "dist/code-cache/ogygia-lazy.cache",
  ];
  for (const file of files) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await copyFile(path.join(REPO_ROOT, file), path.join(root, file));
  }
  await symlink(path.join(REPO_ROOT, "node_modules"), path.join(root, "node_modules"));
  return {
    bin: path.join(root, "bin/ogygia"),
    bundleDir: path.join(root, "dist/bundle"),
    cache: path.join(root, "dist/code-cache/ogygia.cache"),
    lazyCache: path.join(root, "dist/code-cache/ogygia-lazy.cache"),
  };
}

/**
 * Whether V8 takes the copy's code cache of the core (or with `lazy`, of
 * the lazy file), asked in a node of its own (with `env`).
 */
async function cacheUsed(
  copy: PackageCopy,
  env: Record<string, string> = {},
  { lazy = false }: { lazy?: boolean } = {},
): Promise<boolean> {
  const script = `const { compileFile } = require(process.argv[1]);
process.stdout.write(String(compileFile(process.argv[2], process.argv[3]).cacheUsed));`;
  const file = path.join(copy.bundleDir, lazy ? "ogygia-lazy.cjs" : "ogygia.cjs");
  const result = await runCommand(
    process.execPath,
    [
      "-e",
      script,
      path.join(copy.bundleDir, "launch.cjs"),
      file,
      lazy ? copy.lazyCache : copy.cache,
    ],
    { env },
  );
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout).toMatch(/^(true|false)$/);
  return result.stdout === "true";
}

const TABLE_ROW = `testhost.example.com  ${REV_A.slice(0, 12)}  ${REV_A.slice(0, 12)}  ${REV_B.slice(0, 12)}`;

/** `status` of the test's system through the copy: the table's row, nothing on stderr. */
async function expectStatus(copy: PackageCopy, env: Record<string, string> = {}): Promise<void> {
  const status = await runCommand(copy.bin, ["status", "--root", system.root], { env });
  expect(status.stderr).toBe("");
  expect(status.code).toBe(0);
  expect(status.stdout).toContain(TABLE_ROW);
}

/**
 * A command of the lazy file through the copy: `config check` of a missing
 * file. Its `OgygiaError` is made by the lazy file's code and recognised by
 * the core's error handler (exit 1 and the hint, not "a bug"): one copy of
 * the error class across both files.
 */
async function expectLazyCommand(
  copy: PackageCopy,
  env: Record<string, string> = {},
): Promise<void> {
  const missing = path.join(dir, "no-such-config.toml");
  const result = await runCommand(copy.bin, ["config", "check", missing], { env });
  expect(result.stdout).toBe("");
  expect(result.stderr).toBe(
    `error: configuration file ${missing} does not exist\n` +
      "hint: Check --config or $OGYGIA_CONFIG, or unset it to use the default path.\n",
  );
  expect(result.code).toBe(1);
  const json = await runCommand(copy.bin, ["config", "check", "--json", missing], { env });
  expect(JSON.parse(json.stdout)).toMatchObject({ error: { code: "ERR_OGYGIA_CONFIG_READ" } });
  expect(json.code).toBe(1);
}

describe("bin/ogygia start-up", () => {
  it("starts with the code cache the build made, which V8 takes", async () => {
    const copy = await packageCopy();
    expect(await cacheUsed(copy)).toBe(true);
    expect(await cacheUsed(copy, {}, { lazy: true })).toBe(true);
    await expectStatus(copy);
    await expectLazyCommand(copy);
    // --version reads the package.json above the launcher.
    const versionRun = await runCommand(copy.bin, ["--version"]);
    expect(versionRun.stdout).toBe(`${version}\n`);
  });

  it("lays out a non-ASCII host name with the bundled display-width library, from the cache", async () => {
    // The width library is loaded on first need; from a code-cached script
    // an import() would fail, so it must be in the bundle.
    const copy = await packageCopy();
    expect(await cacheUsed(copy)).toBe(true);
    const result = await runCommand(copy.bin, ["status", "--root", system.root], {
      env: { OGYGIA_HOSTNAME: "hôte-été.example" },
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    // The host column is as wide as the name's 16 columns, then 2 apart.
    expect(lines.find((line) => line.startsWith("Host"))).toMatch(/^Host {14}⚡ current/);
    expect(lines.at(-1)).toBe(
      `hôte-été.example  ${REV_A.slice(0, 12)}  ${REV_A.slice(0, 12)}  ${REV_B.slice(0, 12)}`,
    );
  });

  it("resolves a symbolic link to the launcher script, as npm installs it", async () => {
    const copy = await packageCopy();
    const link = path.join(dir, `ogygia-link-${packages}`);
    await symlink(copy.bin, link);
    const result = await runCommand(link, ["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
  });

  it("starts without a code cache (the npm package ships none)", async () => {
    const copy = await packageCopy();
    await rm(copy.cache);
    await rm(copy.lazyCache);
    expect(await cacheUsed(copy)).toBe(false);
    expect(await cacheUsed(copy, {}, { lazy: true })).toBe(false);
    await expectStatus(copy);
    await expectLazyCommand(copy);
  });

  it("runs status and --version without the lazy file, and everything else from it", async () => {
    // The core alone serves `status` (and its help) and --version; other
    // commands, the command table and its help fail with the file gone, so it
    // was the lazy file that served them.
    const copy = await packageCopy();
    await rm(path.join(copy.bundleDir, "ogygia-lazy.cjs"));
    await expectStatus(copy);
    const help = await runCommand(copy.bin, ["status", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: ogygia status [options]");
    const versionRun = await runCommand(copy.bin, ["--version"]);
    expect(versionRun.stdout).toBe(`${version}\n`);
    for (const args of [["config", "check", "/nonexistent"], ["fleet", "--help"], ["--help"]]) {
      const lazy = await runCommand(copy.bin, args);
      expect(lazy.code, args.join(" ")).not.toBe(0);
      expect(lazy.stderr, args.join(" ")).toContain("ogygia-lazy.cjs");
    }
  });

  it("starts when V8 refuses the cache: other V8 flags, cut short, not a cache", async () => {
    const copy = await packageCopy();
    const flags = { NODE_OPTIONS: "--max-old-space-size=256" };
    expect(await cacheUsed(copy, flags)).toBe(false);
    expect(await cacheUsed(copy, flags, { lazy: true })).toBe(false);
    await expectStatus(copy, flags);
    await expectLazyCommand(copy, flags);

    const cache = await readFile(copy.cache);
    for (const wrong of [
      cache.subarray(0, cache.length >> 1),
      cache.subarray(0, 10),
      Buffer.alloc(0),
    ]) {
      await writeFile(copy.cache, wrong);
      await writeFile(copy.lazyCache, wrong);
      expect(await cacheUsed(copy)).toBe(false);
      expect(await cacheUsed(copy, {}, { lazy: true })).toBe(false);
      await expectStatus(copy);
      await expectLazyCommand(copy);
    }
    await writeFile(copy.cache, await readFile(path.join(copy.bundleDir, "ogygia.cjs")));
    expect(await cacheUsed(copy)).toBe(false);
    await expectStatus(copy);
    // Each file's cache in the other's place: V8 refuses both.
    const copy2 = await packageCopy();
    const [core, lazy] = [await readFile(copy2.cache), await readFile(copy2.lazyCache)];
    await writeFile(copy2.cache, lazy);
    await writeFile(copy2.lazyCache, core);
    expect(await cacheUsed(copy2)).toBe(false);
    expect(await cacheUsed(copy2, {}, { lazy: true })).toBe(false);
    await expectStatus(copy2);
    await expectLazyCommand(copy2);
  });

  it("starts when the bundle changed after its cache was made", async () => {
    const copy = await packageCopy();
    for (const name of ["ogygia.cjs", "ogygia-lazy.cjs"]) {
      const bundle = path.join(copy.bundleDir, name);
      await writeFile(bundle, `${await readFile(bundle, "latin1")}\n// changed\n`, "latin1");
    }
    expect(await cacheUsed(copy)).toBe(false);
    expect(await cacheUsed(copy, {}, { lazy: true })).toBe(false);
    await expectStatus(copy);
    await expectLazyCommand(copy);
  });

  it("loads no built-in module for a local status beyond vm and parseArgs", async () => {
    // Each built-in module loaded costs a start 0.1-0.5 ms (node:os was one,
    // for the host name). The list is node's own, printed at exit.
    const copy = await packageCopy();
    const preload = path.join(dir, "print-modules.cjs");
    await writeFile(
      preload,
      `process.on("exit", () => require("node:fs").writeSync(2, "\\n" + JSON.stringify(process.moduleLoadList)));`,
    );
    const loaded = async (args: string[]): Promise<string[]> => {
      const result = await runCommand(process.execPath, ["-r", preload, ...args]);
      expect(result.code, result.stderr).toBe(0);
      return JSON.parse(result.stderr.trimEnd().split("\n").at(-1) ?? "[]") as string[];
    };
    const bare = new Set(await loaded(["-e", ""]));
    const ours = await loaded([
      path.join(copy.bundleDir, "launch.cjs"),
      "status",
      "--root",
      system.root,
    ]);
    const extra = ours.filter((name) => !bare.has(name) && name.startsWith("NativeModule "));
    expect(extra.sort()).toEqual([
      "NativeModule internal/util/parse_args/parse_args",
      "NativeModule internal/util/parse_args/utils",
      "NativeModule vm",
    ]);
  });

  it("keeps error output and exit codes", async () => {
    const copy = await packageCopy();
    const result = await runCommand(copy.bin, ["statuz"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "error: unknown command 'statuz'\nhint: did you mean 'status'? Run 'ogygia --help' for usage.\n",
    );
  });
});
