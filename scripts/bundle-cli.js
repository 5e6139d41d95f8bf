// @ts-check
/**
 * Bundles the CLI into two CommonJS files that share one copy of every module:
 *
 * - `dist/bundle/ogygia.cjs`, the core: what `src/cli/bundle.ts` reaches by
 *   static imports (the command table, argument parsing, `status`), plus
 *   string-width, which `status` loads for a non-ASCII host name;
 * - `dist/bundle/ogygia-lazy.cjs`, everything else the CLI loads with
 *   `import()` (fleet clients, publish, rollout, dashboard, impact, nebula,
 *   builders, the irisd client, ...), compiled by the launcher on the first
 *   such `import()`, so a `status` start reads, deserializes and evaluates
 *   the core alone.
 *
 * How: esbuild splits the program into ES module chunks (each module's code in
 * exactly one chunk, shared code in chunks of its own); the chunks the entry
 * reaches statically, and those of string-width, are bundled into the core,
 * the rest into the lazy file. A chunk of one file that another file's chunk
 * imports is reached through the launcher: each file exports
 * `__ogygiaChunks`, a getter per chunk that others import (evaluating it on
 * first use), and its imports of the other file's chunks are the externals
 * `ogygia-core:<chunk>` and `ogygia-lazy:<chunk>` that the launcher's
 * `require` answers from those getters (scripts/launch.cjs). `import()` is
 * compiled to `require` (the launcher's `vm.Script` has no module loader).
 *
 * The build fails when a chunk lands in both files or in neither (a second
 * copy of a module would break `instanceof OgygiaError` and module state).
 */

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outdir = path.join(repo, "dist/bundle");

/** Packages loaded with `require` from node_modules at run time, not bundled. */
const EXTERNAL = [
  "@bufbuild/protobuf",
  "better-sqlite3",
  "node-zookeeper-client",
  "pino",
  "prom-client",
  "seek-bzip",
  "undici",
];

/** Modules loaded with `import()` whose chunks still belong in the core: `status` uses them. */
const CORE_DYNAMIC = [/[/\\]node_modules[/\\]string-width[/\\]/];

/** A failed check: the build stops with its message (after removing the first stage's folder). */
class BundleError extends Error {}

/** Fails the build with a message naming what went wrong. */
function fail(/** @type {string} */ message) {
  throw new BundleError(message);
}

/** An identifier-safe key of a chunk's path relative to the first stage's folder. */
function chunkKey(/** @type {string} */ rel) {
  return rel.split(path.sep).join("/");
}

const stage = mkdtempSync(path.join(os.tmpdir(), "ogygia-bundle-"));
try {
  // 1. ES module chunks, each module's code in one chunk.
  const first = await esbuild.build({
    entryPoints: { ogygia: path.join(repo, "src/cli/bundle.ts") },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    external: EXTERNAL,
    keepNames: true,
    sourcemap: true,
    metafile: true,
    outdir: stage,
    absWorkingDir: repo,
    chunkNames: "chunk-[hash]",
    logLevel: "warning",
  });
  const outputs = first.metafile.outputs;
  /** A metafile path (relative to the repository) as a key of `chunks`. */
  const relOf = (/** @type {string} */ file) =>
    chunkKey(path.relative(stage, path.resolve(repo, file)));
  /** @type {Map<string, {imports: {path: string, kind: string}[], entryPoint?: string}>} */
  const chunks = new Map();
  for (const [file, output] of Object.entries(outputs)) {
    if (!file.endsWith(".js")) continue;
    chunks.set(relOf(file), output);
  }

  // 2. Which chunks the core holds: the entry's static closure, and the
  //    dynamic chunks `status` uses with theirs.
  /** @type {Set<string>} */
  const core = new Set();
  const addStatic = (/** @type {string} */ key) => {
    if (core.has(key)) return;
    core.add(key);
    for (const imported of chunks.get(key)?.imports ?? []) {
      if (imported.kind === "import-statement" && !imported.path.startsWith("node:")) {
        const rel = relOf(imported.path);
        if (chunks.has(rel)) addStatic(rel);
      }
    }
  };
  addStatic("ogygia.js");
  for (const [key, output] of chunks) {
    const entry = output.entryPoint;
    if (
      entry !== undefined &&
      CORE_DYNAMIC.some((pattern) => pattern.test(path.resolve(repo, entry)))
    ) {
      addStatic(key);
    }
  }
  const lazy = new Set([...chunks.keys()].filter((key) => !core.has(key)));

  /** Chunks of `from` that the other file's chunks import (statically or not). */
  const exposed = (/** @type {Set<string>} */ from) => {
    /** @type {Set<string>} */
    const keys = new Set();
    for (const [key, output] of chunks) {
      if (from.has(key)) continue;
      for (const imported of output.imports) {
        const rel = relOf(imported.path);
        if (from.has(rel)) keys.add(rel);
      }
    }
    return [...keys].sort();
  };

  /**
   * The second stage of one file: its chunks bundled into CommonJS, the other
   * file's chunks external under `prefix`.
   */
  const bundleFile = async (
    /** @type {string} */ name,
    /** @type {Set<string>} */ own,
    /** @type {string} */ otherPrefix,
    /** @type {string[]} */ entryImports,
  ) => {
    const getters = exposed(own).map(
      (key) => `  ${JSON.stringify(key)}: () => require(${JSON.stringify(path.join(stage, key))}),`,
    );
    const contents = [
      ...entryImports,
      `export const __ogygiaChunks = {\n${getters.join("\n")}\n};`,
    ].join("\n");
    const result = await esbuild.build({
      stdin: { contents, resolveDir: stage, sourcefile: `${name}-entry.js`, loader: "js" },
      bundle: true,
      format: "cjs",
      platform: "node",
      target: "node20",
      supported: { "dynamic-import": false },
      external: EXTERNAL,
      // Names are kept by the first stage (`keepNames`: stack traces and
      // `constructor.name`); a second pass would name every function twice.
      minify: true,
      sourcemap: true,
      metafile: true,
      outfile: path.join(outdir, `${name}.cjs`),
      absWorkingDir: repo,
      logLevel: "warning",
      // src/dashboard/server.ts reads `import.meta.url` where it exists and
      // finds its files from the script node runs where it does not (here).
      logOverride: { "empty-import-meta": "silent" },
      plugins: [
        {
          name: "ogygia-chunks",
          setup(build) {
            build.onResolve({ filter: /^\.\.?\// }, (args) => {
              if (!args.importer.startsWith(stage)) return undefined;
              const rel = chunkKey(path.relative(stage, path.resolve(args.resolveDir, args.path)));
              if (!chunks.has(rel) || own.has(rel)) return undefined;
              return { path: `${otherPrefix}${rel}`, external: true };
            });
          },
        },
      ],
    });
    const bundled = new Set(
      Object.keys(result.metafile.inputs)
        .map((input) => path.resolve(repo, input))
        .filter((input) => input.startsWith(stage) && input.endsWith(".js"))
        .map((input) => chunkKey(path.relative(stage, input))),
    );
    return bundled;
  };

  const coreBundled = await bundleFile("ogygia", core, "ogygia-lazy:", [
    `export * from ${JSON.stringify(path.join(stage, "ogygia.js"))};`,
  ]);
  const lazyBundled = await bundleFile("ogygia-lazy", lazy, "ogygia-core:", []);

  // 3. One copy of every chunk: each in exactly one file, the one planned.
  for (const key of chunks.keys()) {
    const inCore = coreBundled.has(key);
    const inLazy = lazyBundled.has(key);
    if (inCore && inLazy) fail(`chunk ${key} was bundled into both files`);
    if (inCore !== core.has(key) && (inCore || inLazy)) {
      fail(`chunk ${key} was bundled into the ${inCore ? "core" : "lazy"} file, not as planned`);
    }
    if (!inCore && !inLazy && exposedAnywhere(key)) fail(`chunk ${key} is in neither file`);
  }

  /** Whether some chunk imports `key` (a chunk nobody imports and no file holds is unused). */
  function exposedAnywhere(/** @type {string} */ key) {
    if (key === "ogygia.js") return true;
    for (const output of chunks.values()) {
      if (output.imports.some((imported) => relOf(imported.path) === key)) return true;
    }
    return false;
  }
} catch (err) {
  if (!(err instanceof BundleError)) throw err;
  process.stderr.write(`bundle-cli: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  rmSync(stage, { recursive: true, force: true });
}
