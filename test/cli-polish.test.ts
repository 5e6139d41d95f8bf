/**
 * The CLI as a new user meets it: group help, did-you-mean, one form for
 * usage errors, JSON errors with --json, --root checked, shell completion.
 */

import { describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";

describe("usage errors", () => {
  it("suggests the command a typo was meant to be", async () => {
    const result = await runCli(["stauts"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "error: unknown command 'stauts'\nhint: did you mean 'status'? Run 'ogygia --help' for usage.\n",
    );
  });

  it("suggests the option a typo was meant to be", async () => {
    const result = await runCli(["status", "--jsn"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "error: unknown option '--jsn'\nhint: did you mean '--json'? Run 'ogygia status --help' for usage.\n",
    );
  });

  it("says a missing option value in the same form", async () => {
    const result = await runCli(["iris", "push", "--sign"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "error: option '--sign' needs a value\nhint: Run 'ogygia iris push --help' for usage.\n",
    );
  });
});
