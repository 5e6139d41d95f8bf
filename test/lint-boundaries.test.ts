/**
 * The folder-boundary rule in eslint.config.js: code is linted with the
 * project's real configuration (ESLint's Node API, text that is never
 * written to disk), without type information (the project service knows
 * only files on disk), and only the boundary rules' messages are looked at.
 */

import { ESLint } from "eslint";
import tseslint from "typescript-eslint";
import { describe, expect, it } from "vitest";

import { REPO_ROOT } from "./helpers/cli.js";

const BOUNDARY_RULES = new Set(["no-restricted-imports", "no-restricted-syntax"]);
const MESSAGE = "Import another folder only through its entry file";

const eslint = new ESLint({ cwd: REPO_ROOT, overrideConfig: tseslint.configs.disableTypeChecked });

/** The boundary rules' messages for `code` linted as if it were `file`. */
async function boundaryMessages(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: file });
  const messages = result?.messages ?? [];
  expect(messages.filter((m) => m.fatal)).toEqual([]);
  return messages
    .filter((m) => m.ruleId !== null && BOUNDARY_RULES.has(m.ruleId))
    .map((m) => m.message);
}

describe("the folder-boundary lint rule", () => {
  it.each([
    ["an inner file of a sibling folder", "src/status/probe.ts", "../fleet/keys.js"],
    ["an inner file of a folder two levels up", "src/iris/p2p/probe.ts", "../../nix/hash.js"],
    ["a file of the parent folder", "src/iris/http/probe.ts", "../contract.js"],
    ["an inner file of a sub-layer", "src/iris/probe.ts", "./http/router.js"],
    ["an inner src file from test/", "test/probe.test.ts", "../src/fleet/keys.js"],
    ["an inner src file from test/helpers", "test/helpers/probe.ts", "../../src/nix/hash.js"],
    ["an inner src file from bench/", "bench/probe.ts", "../src/fleet/zookeeper.js"],
  ])("rejects importing %s (%s: %s)", async (_what, file, specifier) => {
    const messages = await boundaryMessages(file, `export * from "${specifier}";\n`);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain(MESSAGE);
    expect(messages[0]).toContain("index.js");
  });

  it("rejects a dynamic import() of another folder's inner file", async () => {
    const code = `export const load = () => import("../fleet/etcd.js");\n`;
    const messages = await boundaryMessages("src/status/probe.ts", code);
    expect(messages).toEqual([expect.stringContaining(MESSAGE)]);
  });

  it.each([
    ["a sibling folder's entry file", "src/status/probe.ts", "../fleet/index.js"],
    ["the parent folder's entry file", "src/iris/http/probe.ts", "../index.js"],
    ["a sub-layer's entry file", "src/iris/probe.ts", "./http/index.js"],
    ["a file of its own folder", "src/status/probe.ts", "./render.js"],
    ["test/support from a unit test", "src/nix/probe.test.ts", "../../test/support/nix.js"],
    ["a src entry file from test/", "test/probe.test.ts", "../src/fleet/index.js"],
    ["a test helper from test/", "test/probe.test.ts", "./helpers/cli.js"],
  ])("accepts importing %s (%s: %s)", async (_what, file, specifier) => {
    const code = `export * from "${specifier}";\nexport const load = () => import("${specifier}");\n`;
    expect(await boundaryMessages(file, code)).toEqual([]);
  });
});
