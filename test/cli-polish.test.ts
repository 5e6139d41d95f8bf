/**
 * The CLI as a new user meets it: group help, did-you-mean, one form for
 * usage errors, JSON errors with --json, --root checked, shell completion.
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";

describe("command groups", () => {
  const irisHelp =
    /^Usage: ogygia iris <command> \[options\]\n[\s\S]*\n {2}iris push {7}sign [\s\S]*\n {2}iris providers {2}show /;

  it("prints the group's help for `ogygia iris`, exit 2 like `ogygia` alone", async () => {
    const result = await runCli(["iris"]);
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(irisHelp);
    expect(result.stderr).toBe("");
  });

  for (const argv of [
    ["iris", "--help"],
    ["iris", "-h"],
    ["help", "iris"],
  ]) {
    it(`prints the group's help for \`ogygia ${argv.join(" ")}\`, exit 0`, async () => {
      const result = await runCli(argv);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(irisHelp);
    });
  }

  it("prints the config group's help for `ogygia config` and `ogygia config --help`", async () => {
    const bare = await runCli(["config"]);
    const help = await runCli(["config", "--help"]);
    expect(bare.code).toBe(2);
    expect(help.code).toBe(0);
    expect(bare.stdout).toBe(help.stdout);
    expect(help.stdout).toMatch(/^Usage: ogygia config <command> \[options\]\n/);
    expect(help.stdout).toMatch(/^ {2}config check {2}validate /m);
  });
});

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

describe("errors with --json", () => {
  it("prints a usage error as JSON on stdout and as text on stderr", async () => {
    const result = await runCli(["status", "--jsn", "--json"]);
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toEqual({
      error: {
        code: "ERR_OGYGIA_USAGE",
        message: "unknown option '--jsn'",
        hint: "did you mean '--json'? Run 'ogygia status --help' for usage.",
      },
    });
    expect(result.stderr).toContain("error: unknown option '--jsn'\n");
  });

  it("prints a command's failure as JSON with its code and exit code", async () => {
    const result = await runCli(["status", "--json"], {
      env: { OGYGIA_CONFIG: "/nonexistent/ogygia.toml" },
    });
    expect(result.code).toBe(1);
    const json = JSON.parse(result.stdout) as { error: Record<string, unknown> };
    expect(json.error.code).toBe("ERR_OGYGIA_CONFIG_READ");
    expect(json.error.message).toContain("/nonexistent/ogygia.toml");
    expect(Object.keys(json.error)).toEqual(["code", "message", "hint"]);
    expect(result.stdout.endsWith("}\n")).toBe(true);
    expect(result.stdout.split("\n")).toHaveLength(2);
  });

  it("leaves stdout alone without --json", async () => {
    const result = await runCli(["status"], { env: { OGYGIA_CONFIG: "/nonexistent/ogygia.toml" } });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
  });
});

describe("--root", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "ogygia-cli-polish-"));
    await writeFile(path.join(dir, "file"), "");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const argv of [["status"], ["status", "--watch"], ["publish", "--once"], ["publish"]]) {
    it(`refuses a folder that does not exist: ogygia ${argv.join(" ")}`, async () => {
      const missing = path.join(dir, "absent");
      const result = await runCli([...argv, "--root", missing]);
      expect(result.code).toBe(2);
      expect(result.stderr).toBe(
        `error: --root directory ${missing} does not exist\n` +
          `hint: Run 'ogygia ${argv[0] ?? ""} --help' for usage.\n`,
      );
    });
  }

  it("refuses a file that is not a directory", async () => {
    const file = path.join(dir, "file");
    const result = await runCli(["status", "--root", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`error: --root ${file} is not a directory\n`);
  });
});
