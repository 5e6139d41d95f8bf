// @ts-check
"use strict";
/**
 * The CLI's launcher: `bin/ogygia` runs it as `dist/bundle/launch.cjs`
 * (copied there by scripts/build-code-cache.js). It compiles the bundle beside
 * it (`ogygia.cjs`) with V8's code cache (`dist/code-cache/ogygia.cache`,
 * written by the build from a warm run of `status`), so that a start
 * deserializes compiled code instead of parsing half a megabyte of
 * JavaScript. A cache V8 refuses (another node, other V8 flags, another
 * bundle, a file cut short) or a missing one (the npm package ships none)
 * costs the parse and nothing else: V8 checks the cache's length, its own
 * version and flags, and the source's length. It does not checksum the
 * contents in release builds: a cache with bytes changed in place crashes
 * node, like a damaged bundle or node binary would misbehave. The build
 * writes it whole (renamed into place) and never changes it afterwards.
 *
 * CommonJS and no ES module loader: that loader alone costs 15-20 ms.
 */

const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const Module = require("node:module");

/**
 * Compiles the bundle in `dir` with the code cache when there is one.
 * `run` evaluates it as CommonJS and returns its exports; `script` makes
 * the cache (`createCachedData`).
 * @param {string} dir the folder of `ogygia.cjs`
 * @param {string} cacheFile
 */
function compileBundle(dir, cacheFile) {
  const file = path.join(dir, "ogygia.cjs");
  // esbuild writes ASCII only (its default charset; the build checks it), so
  // latin1 reads the same text without a UTF-8 decoding pass.
  const source = fs.readFileSync(file, "latin1");
  /** @type {Buffer | undefined} */
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
  // No `importModuleDynamically`: the bundle has no `import()` (the build
  // checks), and on Node 20 a script compiled from a code cache loses that
  // callback anyway.
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
  return {
    script,
    cacheUsed: cachedData !== undefined && !script.cachedDataRejected,
    /** @returns {Record<string, unknown>} */
    run() {
      const bundleModule = { exports: {} };
      const wrapper = script.runInThisContext();
      wrapper.call(
        bundleModule.exports,
        bundleModule.exports,
        Module.createRequire(file),
        bundleModule,
        file,
        dir,
      );
      return bundleModule.exports;
    },
  };
}

module.exports = { compileBundle };

if (require.main === module) {
  compileBundle(__dirname, path.join(__dirname, "..", "code-cache", "ogygia.cache")).run();
}
