// @ts-check
/**
 * Writes the CLI's launcher and V8 code caches after scripts/bundle-cli.js
 * made the bundle's two files:
 *
 * - `dist/bundle/launch.cjs`, a copy of `scripts/launch.cjs`, the script
 *   `bin/ogygia` runs;
 * - `dist/code-cache/ogygia.cache`, the compiled code of `dist/bundle/ogygia.cjs`
 *   (the core) after a warm run of `status` (the functions a start runs are
 *   in it, not only the top level), and `dist/code-cache/ogygia-lazy.cache`,
 *   that of `dist/bundle/ogygia-lazy.cjs` after evaluating its modules, made
 *   by the node that runs this script. The npm package leaves them out
 *   (`files` takes `dist/bundle` only): they fit only this node, and V8
 *   refuses them elsewhere.
 *
 * The build fails when a bundle file is not ASCII (the launcher reads it as
 * latin1) or has an `import()`, when the launcher does not print the
 * version, or when V8 refuses a cache it was just given.
 */

import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bundleDir = path.join(repo, "dist/bundle");
const launcher = path.join(bundleDir, "launch.cjs");
const cacheDir = path.join(repo, "dist/code-cache");
/** The CLI's files (scripts/bundle-cli.js), each with a cache of the same name. */
const BUNDLE_FILES = ["ogygia.cjs", "ogygia-lazy.cjs"];

/** Fails the build with a message naming what went wrong. */
function fail(message) {
  process.stderr.write(`build-code-cache: ${message}\n`);
  process.exit(1);
}

for (const name of BUNDLE_FILES) {
  const bundle = readFileSync(path.join(bundleDir, name));
  const nonAscii = bundle.findIndex((byte) => byte > 0x7f);
  if (nonAscii !== -1) {
    fail(
      `dist/bundle/${name} has a non-ASCII byte at offset ${nonAscii}; the launcher reads it as latin1`,
    );
  }
  // The launcher compiles the bundle with vm.Script, where `import()` has no
  // loader (and on Node 20 loses it when the script comes from a code cache):
  // every package the CLI loads lazily is bundled or required.
  const dynamicImport = bundle.toString("latin1").search(/\bimport\s*\(/);
  if (dynamicImport !== -1) {
    fail(
      `dist/bundle/${name} has an import() at offset ${dynamicImport}; bundle that package instead`,
    );
  }
}

copyFileSync(path.join(repo, "scripts/launch.cjs"), launcher);
rmSync(cacheDir, { recursive: true, force: true });
mkdirSync(cacheDir, { recursive: true });

// In a process of its own, as a start would: compile without a cache, tell
// the bundle not to start (the global the bundle's entry reads), run the
// status path once, then save what V8 compiled. The lazy file's cache is made
// after evaluating every chunk the core can import: each module's top level
// is then compiled in it, the functions a command runs are not.
const make = `
const { loadBundle } = require(process.argv[1]);
globalThis[Symbol.for("ogygia.buildingCodeCache")] = true;
const bundle = loadBundle(process.argv[2], "/nonexistent");
const core = bundle.run();
const fs = require("node:fs");
const save = (compiled, name) => {
  // Whole or not at all: V8 refuses a cache cut short, but not one with
  // bytes changed in place (it would crash), so the file is renamed into place.
  const file = require("node:path").join(process.argv[3], name.replace(/\\.cjs$/, ".cache"));
  fs.writeFileSync(file + ".tmp", compiled.script.createCachedData());
  fs.renameSync(file + ".tmp", file);
};
core.warmUp(process.argv[4]).then(() => {
  save(bundle.core, "ogygia.cjs");
  const lazy = bundle.lazyExports();
  for (const getter of Object.values(lazy.__ogygiaChunks)) getter();
  save(bundle.lazy(), "ogygia-lazy.cjs");
});
`;
// The warm run's root: laid out like a NixOS host's, each state a link into
// a store path with a build-revision file, so that reading and showing them
// is compiled in the cache (a start on a real host runs those functions).
const warmRoot = mkdtempSync(path.join(os.tmpdir(), "ogygia-code-cache-root-"));
let made;
try {
  const system = (/** @type {number} */ n) => {
    const name = `${String(n).repeat(32)}-nixos-system-warm-up-${n}`;
    const share = path.join(warmRoot, "nix/store", name, "sw/share/ogygia");
    mkdirSync(share, { recursive: true });
    writeFileSync(path.join(share, "build-revision"), `${String(n).repeat(40)}\n`);
    return `/nix/store/${name}`;
  };
  mkdirSync(path.join(warmRoot, "run"));
  mkdirSync(path.join(warmRoot, "nix/var/nix/profiles"), { recursive: true });
  symlinkSync(system(1), path.join(warmRoot, "run/current-system"));
  symlinkSync(system(1), path.join(warmRoot, "run/booted-system"));
  symlinkSync(system(2), path.join(warmRoot, "nix/var/nix/profiles/system-2-link"));
  symlinkSync("system-2-link", path.join(warmRoot, "nix/var/nix/profiles/system"));
  made = spawnSync(process.execPath, ["-e", make, launcher, bundleDir, cacheDir, warmRoot], {
    stdio: "inherit",
  });
} finally {
  rmSync(warmRoot, { recursive: true, force: true });
}
if (made.status !== 0) fail(`making the code cache exited with ${String(made.status)}`);

// V8 takes the caches it was given, and the launcher starts the program.
for (const name of BUNDLE_FILES) {
  const check = `
const { compileFile } = require(process.argv[1]);
process.stdout.write(String(compileFile(process.argv[2], process.argv[3]).cacheUsed));
`;
  const cacheFile = path.join(cacheDir, name.replace(/\.cjs$/, ".cache"));
  const used = spawnSync(
    process.execPath,
    ["-e", check, launcher, path.join(bundleDir, name), cacheFile],
    { encoding: "utf8" },
  );
  if (used.status !== 0 || used.stdout !== "true") {
    fail(
      `V8 refused the code cache of ${name} it was just given: ${JSON.stringify(used.stdout + used.stderr)}`,
    );
  }
}
const version = JSON.parse(readFileSync(path.join(repo, "package.json"), "utf8")).version;
const started = spawnSync(process.execPath, [launcher, "--version"], { encoding: "utf8" });
if (started.status !== 0 || started.stdout.trim() !== version) {
  fail(`the launcher printed ${JSON.stringify(started.stdout + started.stderr)} for --version`);
}
