/**
 * Command-line parsing on Node's built-in `util.parseArgs`, with generated
 * help. Not a CLI framework: start-up time is part of the product, and the
 * frameworks cost 20-40 ms to load, a quarter of `ogygia status`'s budget.
 */

import { statSync } from "node:fs";
import { parseArgs } from "node:util";

import { OgygiaError, escapeForTerminal, hasErrorCode } from "../core/index.js";
import { closestMatch } from "./suggest.js";

export interface OptionSpec {
  type: "boolean" | "string";
  short?: string;
  description: string;
  /** Placeholder shown in help, e.g. `DIR`. */
  valueName?: string;
  default?: string;
  multiple?: boolean;
  /** The value must name an existing directory (checked before the command runs). */
  existingDirectory?: boolean;
}

export interface PositionalSpec {
  name: string;
  description: string;
  variadic?: boolean;
  optional?: boolean;
  /** The only values accepted (also offered by shell completion). */
  choices?: readonly string[];
}

export type OptionValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface ParsedArgs {
  values: OptionValues;
  positionals: string[];
}

export interface CommandSpec {
  /** Words that select the command, e.g. `["iris", "push"]`. */
  path: readonly string[];
  summary: string;
  description: string;
  options: Record<string, OptionSpec>;
  positionals?: readonly PositionalSpec[];
  environment?: readonly (readonly [name: string, description: string])[];
  examples?: readonly string[];
  /** Runs the command; returns the exit code. Loaded lazily by the caller. */
  run: (args: ParsedArgs) => Promise<number>;
}

/**
 * A usage error, exit code 2. Every one prints the same way: `error: <message>`,
 * then a hint with the closest valid word, if any, and a pointer to `--help`.
 */
export function usageError(
  message: string,
  command?: { readonly path: readonly string[] },
  options: { didYouMean?: string | undefined } = {},
): OgygiaError {
  const helpFor = command ? `ogygia ${command.path.join(" ")} --help` : "ogygia --help";
  const suggestion =
    options.didYouMean === undefined
      ? ""
      : `did you mean '${escapeForTerminal(options.didYouMean)}'? `;
  return new OgygiaError("ERR_OGYGIA_USAGE", message, {
    hint: `${suggestion}Run '${helpFor}' for usage.`,
    exitCode: 2,
  });
}

/** Finds the command selected by the leading words of `argv` (longest match). */
export function findCommand(
  commands: readonly CommandSpec[],
  argv: readonly string[],
): { command: CommandSpec; rest: string[] } | undefined {
  let best: CommandSpec | undefined;
  for (const command of commands) {
    const matches = command.path.every((word, i) => argv[i] === word);
    if (matches && (!best || command.path.length > best.path.length)) best = command;
  }
  return best ? { command: best, rest: argv.slice(best.path.length) } : undefined;
}

/** Parses a command's arguments; unknown options and missing values are usage errors. */
export function parseCommandArgs(command: CommandSpec, argv: readonly string[]): ParsedArgs {
  const options: Record<
    string,
    { type: "boolean" | "string"; short?: string; multiple?: boolean; default?: string }
  > = {};
  for (const [name, spec] of Object.entries(command.options)) {
    options[name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.multiple === undefined ? {} : { multiple: spec.multiple }),
      ...(spec.default === undefined ? {} : { default: spec.default }),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  const allowPositionals = (command.positionals?.length ?? 0) > 0;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals });
  } catch (err) {
    if (err instanceof TypeError && "code" in err && typeof err.code === "string") {
      throw parseArgsUsageError(command, argv, err.message);
    }
    throw err;
  }
  const positionals = parsed.positionals;
  const specs = command.positionals ?? [];
  const required = specs.filter((p) => p.optional !== true && p.variadic !== true).length;
  if (positionals.length < required) {
    const missing = specs[positionals.length];
    throw usageError(`missing argument <${missing?.name ?? "?"}>`, command);
  }
  if (!specs.some((p) => p.variadic === true) && positionals.length > specs.length) {
    throw usageError(
      `unexpected argument '${escapeForTerminal(positionals[specs.length] ?? "")}'`,
      command,
    );
  }
  for (const [i, value] of positionals.entries()) {
    // Past the last spec, values belong to the last (variadic) one.
    const spec = specs[Math.min(i, specs.length - 1)];
    if (spec?.choices && !spec.choices.includes(value)) {
      throw usageError(
        `unknown ${spec.name} '${escapeForTerminal(value)}' (use ${spec.choices.join(", ")})`,
        command,
        { didYouMean: closestMatch(value, spec.choices) },
      );
    }
  }
  return { values: parsed.values as OptionValues, positionals };
}

/**
 * Turns `util.parseArgs`'s complaint into one in our words, by finding the
 * first offending token again (only on this error path, so it costs nothing
 * when the arguments are fine).
 */
function parseArgsUsageError(
  command: CommandSpec,
  argv: readonly string[],
  nodeMessage: string,
): OgygiaError {
  const { tokens } = parseArgs({
    args: [...argv],
    options: Object.fromEntries(
      Object.entries(command.options).map(([name, spec]) => [
        name,
        { type: spec.type, ...(spec.short === undefined ? {} : { short: spec.short }) },
      ]),
    ),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const allowPositionals = (command.positionals?.length ?? 0) > 0;
  for (const token of tokens) {
    if (token.kind === "positional" && !allowPositionals) {
      return usageError(`unexpected argument '${escapeForTerminal(token.value)}'`, command);
    }
    if (token.kind !== "option") continue;
    const raw = escapeForTerminal(token.rawName);
    const spec = command.options[token.name];
    if (!spec) {
      const names = [...Object.keys(command.options), "help"].map((name) => `--${name}`);
      const didYouMean = token.rawName.startsWith("--")
        ? closestMatch(token.rawName, names)
        : undefined;
      return usageError(`unknown option '${raw}'`, command, { didYouMean });
    }
    if (spec.type === "string" && token.value === undefined) {
      return usageError(`option '${raw}' needs a value`, command);
    }
    if (spec.type === "string" && token.inlineValue === false && /^-./.test(token.value)) {
      return usageError(
        `option '${raw}' needs a value (for one that starts with '-', write '--${token.name}=${escapeForTerminal(token.value)}')`,
        command,
      );
    }
    if (spec.type === "boolean" && token.value !== undefined) {
      return usageError(`option '${raw}' takes no value`, command);
    }
  }
  // Not reached for the errors parseArgs has today; kept in its words, lower-cased.
  return usageError(
    escapeForTerminal(nodeMessage.replace(/^[A-Z]/, (c) => c.toLowerCase())),
    command,
  );
}

/** Fails with a usage error when an `existingDirectory` option names no directory. */
export function checkOptionPaths(command: CommandSpec, values: OptionValues): void {
  for (const [name, spec] of Object.entries(command.options)) {
    const value = values[name];
    if (spec.existingDirectory !== true || typeof value !== "string") continue;
    let isDirectory: boolean;
    try {
      isDirectory = statSync(value).isDirectory();
    } catch (err) {
      if (!hasErrorCode(err, "ENOENT", "ENOTDIR")) throw err;
      throw usageError(`--${name} directory ${escapeForTerminal(value)} does not exist`, command);
    }
    if (!isDirectory) {
      throw usageError(`--${name} ${escapeForTerminal(value)} is not a directory`, command);
    }
  }
}

/** The error for words that select no command, with the closest command as a hint. */
export function unknownCommandError(
  commands: readonly CommandSpec[],
  argv: readonly string[],
): OgygiaError {
  const startsPath = (words: readonly string[]): boolean =>
    commands.some((c) => words.length <= c.path.length && words.every((w, i) => c.path[i] === w));
  // argv[depth] is the first word that does not continue any command's path.
  let depth = 0;
  while (depth < argv.length - 1 && startsPath(argv.slice(0, depth + 1))) depth += 1;
  const prefix = argv.slice(0, depth);
  const group = prefix.length > 0 ? { path: prefix } : undefined;
  const word = argv[depth] ?? "";
  if (word.startsWith("-")) {
    const options = depth === 0 ? ["--help", "--version"] : ["--help"];
    return usageError(`unknown option '${escapeForTerminal(word)}'`, group, {
      didYouMean: word.startsWith("--") ? closestMatch(word, options) : undefined,
    });
  }
  const candidates = commands
    .filter((c) => c.path.length > depth && prefix.every((w, i) => c.path[i] === w))
    .map((c) => c.path.slice(0, depth + 1).join(" "));
  if (depth === 0) candidates.push("help");
  const words = argv.slice(0, depth + 1).join(" ");
  return usageError(`unknown command '${escapeForTerminal(words)}'`, group, {
    didYouMean: closestMatch(words, candidates),
  });
}

/**
 * Command groups: the leading words of longer commands (`iris`, `config`,
 * `nebula`, `nebula ca`), each with the commands below it.
 */
export function commandGroups(commands: readonly CommandSpec[]): Map<string, CommandSpec[]> {
  const groups = new Map<string, CommandSpec[]>();
  for (const command of commands) {
    for (let depth = 1; depth < command.path.length; depth += 1) {
      const group = command.path.slice(0, depth).join(" ");
      groups.set(group, [...(groups.get(group) ?? []), command]);
    }
  }
  return groups;
}

/** Help text for a command group, listing its commands. */
export function groupHelp(
  group: string,
  commands: readonly CommandSpec[],
  description: string,
): string {
  return [
    `Usage: ogygia ${group} <command> [options]`,
    "",
    description,
    "",
    "Commands:",
    ...columns(commands.map((c): [string, string] => [c.path.join(" "), c.summary])),
    "",
    "Options:",
    ...columns([["-h, --help", `show help (also: ogygia ${group} <command> --help)`]]),
    "",
  ].join("\n");
}

function optionLabel(name: string, spec: OptionSpec): string {
  const short = spec.short === undefined ? "    " : `-${spec.short}, `;
  const value = spec.type === "string" ? ` <${spec.valueName ?? "value"}>` : "";
  return `${short}--${name}${value}`;
}

function columns(rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`);
}

/** Help text for one command. */
export function commandHelp(command: CommandSpec): string {
  const positionals = (command.positionals ?? [])
    .map((p) => {
      const name = p.variadic === true ? `${p.name}...` : p.name;
      return p.optional === true || p.variadic === true ? `[${name}]` : `<${name}>`;
    })
    .join(" ");
  const lines = [
    `Usage: ogygia ${command.path.join(" ")} [options]${positionals ? ` ${positionals}` : ""}`,
    "",
    command.description,
  ];
  if (command.positionals && command.positionals.length > 0) {
    lines.push(
      "",
      "Arguments:",
      ...columns(command.positionals.map((p) => [p.name, p.description])),
    );
  }
  const optionRows: [string, string][] = Object.entries(command.options).map(([name, spec]) => [
    optionLabel(name, spec),
    spec.default === undefined
      ? spec.description
      : `${spec.description} (default: ${spec.default})`,
  ]);
  optionRows.push(["-h, --help", "show this help"]);
  lines.push("", "Options:", ...columns(optionRows));
  if (command.environment && command.environment.length > 0) {
    lines.push("", "Environment:", ...columns(command.environment));
  }
  if (command.examples && command.examples.length > 0) {
    lines.push("", "Examples:", ...command.examples.map((e) => `  ${e}`));
  }
  return `${lines.join("\n")}\n`;
}

/** Help text for the whole program. */
export function programHelp(commands: readonly CommandSpec[], description: string): string {
  const rows = commands.map((c): [string, string] => [c.path.join(" "), c.summary]);
  return [
    "Usage: ogygia <command> [options]",
    "",
    description,
    "",
    "Commands:",
    ...columns(rows),
    "",
    "Options:",
    ...columns([
      ["-h, --help", "show help (also: ogygia <command> --help)"],
      ["-V, --version", "print the version"],
    ]),
    "",
  ].join("\n");
}
