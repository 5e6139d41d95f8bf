/**
 * The `ogygia` command line: finds the command, parses its arguments, runs
 * it, and maps errors to messages and exit codes in one place.
 */

import { realpathSync } from "node:fs";

import { OgygiaError, errorReport, packageVersion } from "../core/index.js";
import {
  checkOptionPaths,
  commandGroups,
  commandHelp,
  findCommand,
  groupHelp,
  parseCommandArgs,
  programHelp,
  unknownCommandError,
  type CommandSpec,
} from "./args.js";
import { flushOutput, writeLine } from "./output.js";
import { STATUS_COMMAND } from "./status-command.js";

const DESCRIPTION =
  "Fleet tooling for NixOS: which revision runs where, and a shared binary cache.";

/** Where the program runs from. */
export interface ProgramOptions {
  /**
   * The script node was started with (`process.argv[1]`: the bundle, or the
   * launcher beside it); `--version` reads the `package.json` above its real
   * path.
   */
  script: string;
}

/**
 * The command table for `argv`: `status`'s entry alone when the first word is
 * `status` (no other command's path starts with it, so finding the command
 * and its help come out the same), else the whole table, whose metadata and
 * help text a `status` start does not load.
 */
async function commandTable(argv: readonly string[]): Promise<readonly CommandSpec[]> {
  if (argv[0] === STATUS_COMMAND.path[0]) return [STATUS_COMMAND];
  return (await import("./commands.js")).COMMANDS;
}

async function run(argv: readonly string[], options: ProgramOptions): Promise<number> {
  const [first] = argv;
  if (first === "-V" || first === "--version") {
    // node:url on this path only: loading it cost every start ~0.1 ms.
    const { pathToFileURL } = await import("node:url");
    writeLine("stdout", packageVersion(pathToFileURL(realpathSync(options.script)).href));
    return 0;
  }
  const commands = await commandTable(argv);
  if (first === undefined || first === "-h" || first === "--help") {
    writeLine("stdout", programHelp(commands, DESCRIPTION).trimEnd());
    return first === undefined ? 2 : 0;
  }
  if (first === "help") {
    const target = findCommand(commands, argv.slice(1));
    writeLine(
      "stdout",
      (target
        ? commandHelp(target.command)
        : ((await helpForGroup(commands, argv[1])) ?? programHelp(commands, DESCRIPTION))
      ).trimEnd(),
    );
    return 0;
  }
  const found = findCommand(commands, argv);
  if (!found) {
    const words = argv.filter((arg) => !arg.startsWith("-"));
    const flags = argv.slice(words.length);
    const leadingWords = argv.slice(0, words.length).every((arg, i) => arg === words[i]);
    const help =
      leadingWords && flags.length <= 1 ? await helpForGroup(commands, words.join(" ")) : undefined;
    const second = flags[0];
    if (help !== undefined && (second === undefined || second === "-h" || second === "--help")) {
      // Like `ogygia` alone: a bare group is a usage error that prints help.
      writeLine("stdout", help.trimEnd());
      return second === undefined ? 2 : 0;
    }
    throw unknownCommandError(commands, argv);
  }
  if (found.rest.includes("-h") || found.rest.includes("--help")) {
    writeLine("stdout", commandHelp(found.command).trimEnd());
    return 0;
  }
  const args = parseCommandArgs(found.command, found.rest);
  checkOptionPaths(found.command, args.values);
  return found.command.run(args);
}

/** The help of a command group such as `iris`, or undefined for any other word. */
async function helpForGroup(
  table: readonly CommandSpec[],
  word: string | undefined,
): Promise<string | undefined> {
  const commands = word === undefined ? undefined : commandGroups(table).get(word);
  if (word === undefined || commands === undefined) return undefined;
  const { GROUP_SUMMARIES } = await import("./groups.js");
  return groupHelp(word, commands, capitalize(GROUP_SUMMARIES[word] ?? ""));
}

function capitalize(text: string): string {
  return text === "" ? text : `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/** True when the user asked for JSON: `--json` among the options (before any `--`). */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).some(
    (arg) => arg === "--json" || arg.startsWith("--json="),
  );
}

/**
 * Maps an error to a message on stderr and an exit code. With `json`, the
 * error is also one line of JSON on stdout: `{"error":{"code","message","hint"}}`,
 * `hint` null when there is none.
 */
function reportError(err: unknown, { json }: { json: boolean }): number {
  if (json) {
    if (err instanceof OgygiaError) writeJsonError(err.code, err.message, err.hint);
    else {
      const message = err instanceof Error ? err.message : String(err);
      writeJsonError("ERR_OGYGIA_INTERNAL", message, "a bug in ogygia; please report it");
    }
  }
  const report = errorReport(err, { bug: "a bug in ogygia" });
  for (const line of report.lines) writeLine("stderr", line);
  return report.exitCode;
}

function writeJsonError(code: string, message: string, hint: string | undefined): void {
  writeLine("stdout", JSON.stringify({ error: { code, message, hint: hint ?? null } }));
}

/** Runs the CLI with the arguments after the program name; returns the exit code. */
export async function main(argv: readonly string[], options: ProgramOptions): Promise<number> {
  try {
    return await run(argv, options);
  } catch (err) {
    return reportError(err, { json: wantsJson(argv) });
  }
}

/**
 * The program: runs the CLI on `argv` and exits with its code. Nothing here
 * runs when the module loads, so the build can load the bundle and warm its
 * code up without starting it.
 */
export async function runProgram(argv: readonly string[], options: ProgramOptions): Promise<never> {
  const code = await main(argv, options);
  // Network clients can keep timers alive after their work is done, so the CLI
  // exits as soon as the command has finished, but only once its output is out:
  // writes to a pipe through a stream are asynchronous, and exiting early would
  // cut them off.
  await flushOutput();
  process.exit(code);
}
