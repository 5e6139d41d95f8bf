/**
 * The CLI as a new user meets it: group help, did-you-mean, one form for
 * usage errors, JSON errors with --json, --root checked, shell completion.
 */

import { spawnSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { tempDir } from "./support/temp.js";

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
    dir = await tempDir("cli-polish");
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

describe("shell completion", () => {
  let dir: string;
  const scripts: Record<string, string> = {};
  beforeAll(async () => {
    dir = await tempDir("completion");
    await mkdir(path.join(dir, "roots/mnt"), { recursive: true });
    await writeFile(path.join(dir, "roots/mfile"), "");
    for (const shell of ["bash", "zsh", "fish"]) {
      const result = await runCli(["completion", shell]);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe("");
      scripts[shell] = path.join(dir, `ogygia.${shell}`);
      await writeFile(scripts[shell], result.stdout);
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("has help that says how to install it", async () => {
    const result = await runCli(["completion", "--help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Usage: ogygia completion [options] <shell>");
    expect(result.stdout).toContain(
      "ogygia completion bash > ~/.local/share/bash-completion/completions/ogygia",
    );
    expect(result.stdout).toContain("ogygia completion fish > ~/.config/fish/completions/");
  });

  it("refuses an unknown shell, suggesting the closest", async () => {
    const result = await runCli(["completion", "bsh"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "error: unknown shell 'bsh' (use bash, zsh, fish)\n" +
        "hint: did you mean 'bash'? Run 'ogygia completion --help' for usage.\n",
    );
  });

  const syntaxCheck: Record<string, string[]> = {
    bash: ["-n"],
    zsh: ["-n"],
    fish: ["--no-execute"],
  };
  for (const [shell, flags] of Object.entries(syntaxCheck)) {
    it(`prints a ${shell} script that ${shell} parses`, () => {
      const result = spawnSync(shell, [...flags, scripts[shell] ?? ""], { encoding: "utf8" });
      expect(result.stderr).toBe("");
      expect(result.status).toBe(0);
    });
  }

  /** Runs the bash script's completion function as bash would for `words`. */
  function bashComplete(words: string[]): string[] {
    const script = [
      `source ${JSON.stringify(scripts.bash)}`,
      `cd ${JSON.stringify(path.join(dir, "roots"))}`,
      `COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(" ")})`,
      `COMP_CWORD=${words.length - 1}`,
      "_ogygia",
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join("\n");
    const result = spawnSync("bash", ["--norc", "--noprofile", "-c", script], {
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    return result.stdout.split("\n").filter((line) => line !== "");
  }

  it("completes a command word in bash", () => {
    expect(bashComplete(["ogygia", "sta"])).toEqual(["status"]);
    expect(bashComplete(["ogygia", "iris", "pu"])).toEqual(["push"]);
    expect(bashComplete(["ogygia", "help", "con"])).toEqual(["config"]);
  });

  it("completes an option in bash", () => {
    expect(bashComplete(["ogygia", "status", "--j"])).toEqual(["--json"]);
    expect(bashComplete(["ogygia", "publish", "--lo"])).toEqual(["--log-level"]);
  });

  it("completes --root to directories and a shell to its names in bash", () => {
    expect(bashComplete(["ogygia", "status", "--root", "m"])).toEqual(["mnt"]);
    expect(bashComplete(["ogygia", "completion", ""])).toEqual(["bash", "zsh", "fish"]);
  });

  /**
   * Runs the zsh script's function for `words` with zsh's completion
   * functions stubbed to print what they were given (no terminal needed).
   */
  function zshCandidates(words: string[]): string[] {
    const script = [
      "compdef() { :; }",
      '_describe() { local -a a; a=("${(@P)4}"); print -l -- "${a[@]%%:*}"; }',
      '_files() { print -- "_files $*"; }',
      'compadd() { local -a a; a=("${(@P)2}"); print -l -- "${a[@]}"; }',
      `source ${JSON.stringify(scripts.zsh)}`,
      `words=(${words.map((w) => JSON.stringify(w)).join(" ")})`,
      `CURRENT=${words.length}`,
      "_ogygia",
    ].join("\n");
    const result = spawnSync("zsh", ["-f", "-c", script], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    return result.stdout.split("\n").filter((line) => line !== "");
  }

  it("offers the right candidates in zsh", () => {
    expect(zshCandidates(["ogygia", "iris", ""])).toEqual(["push", "providers"]);
    expect(zshCandidates(["ogygia", "status", "--j"])).toContain("--json");
    expect(zshCandidates(["ogygia", "status", "--root", "/m"])).toEqual(["_files -/"]);
    expect(zshCandidates(["ogygia", "config", "check", ""])).toEqual(["_files "]);
    expect(zshCandidates(["ogygia", "completion", ""])).toEqual(["bash", "zsh", "fish"]);
  });

  it("completes commands and options in fish", () => {
    const complete = (line: string): string[] => {
      const result = spawnSync(
        "fish",
        ["--no-config", "-c", `source ${scripts.fish ?? ""}; complete -C ${JSON.stringify(line)}`],
        { encoding: "utf8" },
      );
      expect(result.stderr).toBe("");
      return result.stdout
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => l.split("\t")[0] ?? "");
    };
    expect(complete("ogygia sta")).toEqual(["status"]);
    expect(complete("ogygia status --j")).toEqual(["--json"]);
    expect(complete("ogygia iris ").sort()).toEqual(["providers", "push"]);
  });
});
