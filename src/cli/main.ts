/**
 * The `ogygia` command line. Subcommands are loaded on first use so that
 * `ogygia status` in local mode never loads a network client.
 */

import { readFileSync } from "node:fs";

import { Command, CommanderError, Option } from "commander";

import { OgygiaError, escapeForTerminal } from "../core/index.js";

function packageVersion(): string {
  const pkg = JSON.parse(
    readFileSync(new URL("../../../package.json", import.meta.url), "utf8"),
  ) as { version?: string };
  return pkg.version ?? "0.0.0";
}

/** Writes a line to stdout or stderr. */
export function writeLine(stream: "stdout" | "stderr", text: string): void {
  (stream === "stdout" ? process.stdout : process.stderr).write(`${text}\n`);
}

interface StatusFlags {
  json?: boolean;
  root: string;
  config?: string;
}

function buildProgram(): Command {
  const program = new Command("ogygia")
    .description("Fleet tooling for NixOS: which revision runs where, and a shared binary cache.")
    .version(packageVersion(), "-V, --version", "print the version")
    .helpOption("-h, --help", "show help")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  program
    .command("status")
    .summary("show which revision built each system state, here or across the fleet")
    .description(
      "Show the git revision that built each system state (current, booted, next boot),\n" +
        "for this host alone or for the whole fleet read from etcd or ZooKeeper.",
    )
    .option("--json", "print the report as JSON (full revisions, null where unknown)")
    .addOption(
      new Option("--root <dir>", "resolve system paths (and the default config) under DIR").default(
        "/",
      ),
    )
    .option(
      "--config <file>",
      "configuration file (default: $OGYGIA_CONFIG, else <root>/run/current-system/sw/share/ogygia/config.toml)",
    )
    .addHelpText(
      "after",
      "\nEnvironment:\n" +
        "  OGYGIA_CONFIG    configuration file to use instead of the default\n" +
        "  OGYGIA_HOSTNAME  this host's name, instead of detecting it\n",
    )
    .action(async (flags: StatusFlags) => {
      const status = await import("../status/index.js");
      const report = await status.collectStatus({
        root: flags.root,
        configFile: flags.config,
        env: process.env,
      });
      if (flags.json) {
        writeLine("stdout", JSON.stringify(status.statusJson(report), null, 2));
        return;
      }
      for (const line of await status.renderStatusText(report)) writeLine(line.stream, line.text);
    });

  return program;
}

/** Maps an error to a message on stderr and an exit code. */
function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has already printed usage errors; help and version exit 0.
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof OgygiaError) {
    writeLine("stderr", `error: ${escapeForTerminal(err.message)}`);
    if (err.hint) writeLine("stderr", `hint: ${err.hint}`);
    return err.exitCode;
  }
  writeLine("stderr", "internal error (a bug in ogygia; please report it):");
  writeLine("stderr", err instanceof Error ? (err.stack ?? err.message) : String(err));
  return 70;
}

/** Runs the CLI with `argv` (as `process.argv`) and returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    return reportError(err);
  }
}

// A closed pipe (`ogygia status | head -1`) is not an error worth a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

// Network clients can keep timers alive after their work is done; the CLI
// exits as soon as the command has finished (stdout is synchronous for
// files, pipes and terminals on Linux, so nothing written is lost).
process.exit(await main(process.argv));
