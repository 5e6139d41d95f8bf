/**
 * What the command tables share: the common options (`--root`, `--config`,
 * `--json`), their environment lines, and the few steps every command's
 * `run` repeats (reading a string option, printing a result as text or
 * JSON, requiring a configuration). Kept free of heavy imports: the tables
 * load it at start-up, and everything else is imported on first use.
 */

import { writeLines } from "./output.js";

export const ROOT_OPTION = {
  type: "string",
  valueName: "dir",
  description: "resolve system paths (and the default config) under DIR",
  default: "/",
  existingDirectory: true,
} as const;

export const CONFIG_OPTION = {
  type: "string",
  valueName: "file",
  description:
    "configuration file (default: $OGYGIA_CONFIG, else <root>/run/current-system/sw/share/ogygia/config.toml)",
} as const;

export const JSON_OPTION = { type: "boolean", description: "print the result as JSON" } as const;

export const CONFIG_ENVIRONMENT = [
  ["OGYGIA_CONFIG", "configuration file to use instead of the default"],
  ["OGYGIA_HOSTNAME", "this host's name, instead of detecting it"],
] as const;

/** A string option's value, or undefined when it was not given. */
export function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** `value` as one JSON document on stdout. */
export async function printJson(value: unknown): Promise<void> {
  const { jsonOutput } = await import("../command/index.js");
  writeLines([jsonOutput(value)]);
}

/** `value` as JSON with `--json`, else `lines` on stdout (escaped for the terminal). */
export async function printResult(json: boolean, value: unknown, lines: string[]): Promise<void> {
  if (json) return printJson(value);
  const { escapeForTerminal } = await import("../core/index.js");
  writeLines(lines.map((line) => ({ stream: "stdout", text: escapeForTerminal(line) })));
}

/**
 * The configuration named by `--config` / `$OGYGIA_CONFIG` (or the default
 * under `--root`); an error saying what it was needed for when there is none.
 */
export async function requireConfig(values: Record<string, unknown>, purpose: string) {
  const { loadContext } = await import("../command/index.js");
  const { config } = await loadContext({
    root: text(values.root) ?? "/",
    configFile: text(values.config),
    env: process.env,
  });
  if (!config) {
    const { OgygiaError } = await import("../core/index.js");
    throw new OgygiaError(
      "ERR_OGYGIA_CONFIG_READ",
      `no configuration file to take ${purpose} from`,
      {
        hint: "Name it with --config or $OGYGIA_CONFIG.",
      },
    );
  }
  return config;
}
