// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/*
 * Folder boundaries. Every folder under src/ (and every layer inside one, such
 * as src/iris/http) has one entry file, index.ts; other folders import that
 * folder only through it. Inside a folder, files import each other freely
 * (`./x.js`). Everything else counts as crossing a boundary:
 * - `./sub/x.js`: a layer's inner file; use `./sub/index.js`;
 * - `../x.js`: a file of the parent folder; use `../index.js`, so a layer
 *   depends on its parent's declared surface, not on whatever sits beside it;
 * - `../other/x.js`, at any depth; use `../other/index.js`.
 * test/ and bench/ reach src/ only through entry files too; test/helpers and
 * test/support are test code, not src folders, and unit tests
 * (src/**\/*.test.ts) may import test/support. Static imports and
 * re-exports are checked by no-restricted-imports; `import()` by
 * no-restricted-syntax with the same pattern. Specifiers are checked as
 * written, not resolved.
 */
const ENTRY_ONLY_MESSAGE =
  "Import another folder only through its entry file: import that folder's index.js (and export what you need from its index.ts).";
/** From src/: leaves the folder, is not test/support, and is not an index.js. */
const SRC_CROSS_FOLDER = String.raw`^(?!.*/index\.js$)(?!(?:\.\./)+test/support/)(?:\.\./|\./[^/]+/)`;
/** From test/ and bench/: reaches into src/ and is not an index.js. */
const TEST_INTO_SRC = String.raw`^(?!.*/index\.js$)(?:\.\./)+src/`;

/** The rules enforcing one of the patterns above. */
function entryOnly(/** @type {string} */ regex) {
  // esquery regex literals cannot contain "/"; \x2F is the same character.
  const selector = `ImportExpression > Literal.source[value=/${regex.replaceAll("/", String.raw`\x2F`)}/]`;
  return {
    "no-restricted-imports": ["error", { patterns: [{ regex, message: ENTRY_ONLY_MESSAGE }] }],
    "no-restricted-syntax": ["error", { selector, message: ENTRY_ONLY_MESSAGE }],
  };
}

export default tseslint.config(
  {
    ignores: [
      "dist/",
      "node_modules/",
      "coverage/",
      "nix/",
      "result*",
      // Generated from proto/etcd by `npm run gen:etcd`.
      "src/fleet/etcd-client/*_pb.ts",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  ...tseslint.configs.stylisticTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          allowDefaultProject: ["eslint.config.js", "bin/*"],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/restrict-template-expressions": [
        "error",
        { allowNumber: true, allowBoolean: true },
      ],
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
      "no-console": "off",
    },
  },
  { files: ["src/**/*.ts"], rules: entryOnly(SRC_CROSS_FOLDER) },
  { files: ["test/**/*.ts", "bench/**/*.ts"], rules: entryOnly(TEST_INTO_SRC) },
  {
    files: ["**/*.js", "**/*.cjs"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The CLI's launcher (scripts/launch.cjs) is CommonJS: no ES module loader at start.
    files: ["**/*.cjs"],
    languageOptions: {
      sourceType: "commonjs",
      globals: { require: "readonly", module: "writable", __dirname: "readonly" },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
);
