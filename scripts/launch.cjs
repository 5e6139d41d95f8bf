// @ts-check
"use strict";
/**
 * The CLI's launcher: `bin/ogygia` runs it as `dist/bundle/launch.cjs`
 * (copied there by scripts/build-code-cache.js). The CLI is two CommonJS
 * files (scripts/bundle-cli.js): `ogygia.cjs`, the core a `status` start
 * runs, and `ogygia-lazy.cjs`, the other commands' code, compiled here on
 * the core's first `require("ogygia-lazy:<chunk>")` (an `import()` in the
 * source). Each file imports the other's chunks through this launcher's
 * `require` (`ogygia-core:` and `ogygia-lazy:` names, answered from the
 * file's `__ogygiaChunks` getters), so every module has one copy.
 *
 * Each file is compiled with V8's code cache (`dist/code-cache/<name>.cache`,
 * written by the build from a warm run), so that a start deserializes
 * compiled code instead of parsing JavaScript. A cache V8 refuses (another
 * node, other V8 flags, another bundle, a file cut short) or a missing one
 * (the npm package ships none) costs the parse and nothing else: V8 checks
 * the cache's length, its own version and flags, and the source's length. It
 * does not checksum the contents in release builds: a cache with bytes
 * changed in place crashes node, like a damaged bundle or node binary would
 * misbehave. The build writes it whole (renamed into place) and never
 * changes it afterwards.
 *
 * CommonJS and no ES module loader: that loader alone costs 15-20 ms.
 */

const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");

/**
 * Node's CommonJS wrapper (`Module.wrap`), written out: loading node:module
 * for it cost every start ~0.4 ms.
 * @param {string} source
 */
function wrap(source) {
  return `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
}

/**
 * Compiles one bundle file with its code cache when there is one. `run`
 * evaluates it as CommonJS with the given `require` and returns its exports;
 * `script` makes the cache (`createCachedData`).
 * @param {string} file
 * @param {string} cacheFile
 */
function compileFile(file, cacheFile) {
  // esbuild writes ASCII only (its default charset; the build checks), so
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
  const script = new vm.Script(wrap(source), { filename: file, cachedData });
  return {
    script,
    cacheUsed: cachedData !== undefined && !script.cachedDataRejected,
    /**
     * @param {(id: string) => unknown} require
     * @param {{ exports: Record<string, unknown> }} fileModule
     * @returns {Record<string, unknown>}
     */
    run(require, fileModule = { exports: {} }) {
      const wrapper = script.runInThisContext();
      wrapper.call(
        fileModule.exports,
        fileModule.exports,
        require,
        fileModule,
        file,
        path.dirname(file),
      );
      return fileModule.exports;
    },
  };
}

/**
 * Loads the CLI's core from `dir` (the lazy file on first need), each file
 * with its cache from `cacheDir`. `core` and `lazy()` give the compiled files
 * to the build, which makes their caches.
 * @param {string} dir the folder of `ogygia.cjs` and `ogygia-lazy.cjs`
 * @param {string} cacheDir
 */
function loadBundle(dir, cacheDir) {
  const coreFile = path.join(dir, "ogygia.cjs");
  // Packages and built-in modules, looked up from this folder: this
  // launcher's own `require` when it is beside the bundle, as it is run.
  const nodeRequire = dir === __dirname ? require : require("node:module").createRequire(coreFile);
  /** @type {ReturnType<typeof compileFile> | undefined} */
  let lazy;
  /** @type {Record<string, unknown> | undefined} */
  let lazyExports;
  /** @type {{ exports: Record<string, unknown> }} */
  const coreModule = { exports: {} };
  /** @type {Map<string, unknown>} */
  const chunks = new Map();

  /** The chunk `key` of a file's exports, evaluated on first use. */
  const chunk = (/** @type {Record<string, unknown>} */ exports, /** @type {string} */ key) => {
    let found = chunks.get(key);
    if (found === undefined) {
      const getters = /** @type {Record<string, (() => unknown) | undefined>} */ (
        exports.__ogygiaChunks
      );
      const getter = getters[key];
      if (getter === undefined) throw new Error(`ogygia: no chunk ${key} in ${dir}`);
      found = getter();
      chunks.set(key, found);
    }
    return found;
  };
  const loadLazy = () => {
    if (lazyExports === undefined) {
      lazy = compileFile(
        path.join(dir, "ogygia-lazy.cjs"),
        path.join(cacheDir, "ogygia-lazy.cache"),
      );
      lazyExports = lazy.run((id) =>
        id.startsWith("ogygia-core:") ? chunk(coreModule.exports, id.slice(12)) : nodeRequire(id),
      );
    }
    return lazyExports;
  };

  const core = compileFile(coreFile, path.join(cacheDir, "ogygia.cache"));
  return {
    core,
    /** Evaluates the core (which starts the program unless the build is making the cache). */
    run() {
      return core.run(
        (id) => (id.startsWith("ogygia-lazy:") ? chunk(loadLazy(), id.slice(12)) : nodeRequire(id)),
        coreModule,
      );
    },
    /** The lazy file, compiled and evaluated if it was not yet. */
    lazy() {
      loadLazy();
      return /** @type {ReturnType<typeof compileFile>} */ (lazy);
    },
    /** The lazy file's exports, evaluated if they were not yet. */
    lazyExports: loadLazy,
  };
}

module.exports = { compileFile, loadBundle };

if (require.main === module) {
  loadBundle(__dirname, path.join(__dirname, "..", "code-cache")).run();
}
