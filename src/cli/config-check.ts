/**
 * `ogygia config check`: validates a CLI configuration file with the same
 * loader every command uses, and summarises what it configures. Run by the
 * NixOS module at build time, so it reads the file and nothing else: no
 * backend is contacted.
 */

import { configSource } from "../command/index.js";
import { loadConfig, type OgygiaConfig } from "../config/index.js";
import { OgygiaError, escapeForTerminal, redactUrl } from "../core/index.js";
import { checkCredentialFiles, configuredBackend, type BackendKind } from "../fleet/index.js";

/** What a valid file configures. Invalid files are reported by the loader's error instead. */
export interface ConfigCheckResult {
  /** The file as the user named it (or the default path). */
  file: string;
  valid: true;
  /** The backend the other commands would use (the first registered one configured); null: local-only. */
  backend: BackendKind | null;
  namespace: string | null;
  /** The backend's endpoints, credentials redacted. */
  endpoints: string[];
  /** Credential files others may read (the secrets' files are checked, never shown). */
  warnings?: string[];
}

/** Summarises a loaded configuration: the backend the other commands would pick. */
export function summarizeConfig(config: OgygiaConfig): ConfigCheckResult {
  const selected = configuredBackend(config);
  return {
    file: config.path,
    valid: true,
    backend: selected?.entry.kind ?? null,
    namespace: selected?.settings.namespace ?? null,
    endpoints: selected?.settings.endpoints.map(redactUrl) ?? [],
  };
}

/**
 * Loads and validates `file`, else `$OGYGIA_CONFIG`, else the default path.
 * Whichever it is must exist: checking a file that is not there is an error,
 * not local-only mode. Throws the loader's `OgygiaError` for an invalid file.
 */
export async function checkConfigFile(options: {
  file: string | undefined;
  env: NodeJS.ProcessEnv;
}): Promise<ConfigCheckResult> {
  const source = await configSource({ root: "/", configFile: options.file, env: options.env });
  const config = await loadConfig(source);
  if (config === undefined) {
    // Only the default path may be absent for the other commands (local-only mode).
    throw new OgygiaError(
      "ERR_OGYGIA_CONFIG_READ",
      `configuration file ${source.displayPath} does not exist`,
      { hint: "Name the file to check as an argument, or set $OGYGIA_CONFIG." },
    );
  }
  const summary = summarizeConfig(config);
  // Credential files: unreadable is an error, readable by others a warning.
  const selected = configuredBackend(config);
  if (selected) {
    const problems = checkCredentialFiles(selected.entry.kind, selected.settings.credentials);
    const error = problems.find((p) => p.level === "error");
    if (error) {
      throw new OgygiaError("ERR_OGYGIA_CONFIG_READ", error.message, {
        hint: "Credential files must be readable by the user running ogygia.",
      });
    }
    if (problems.length > 0) summary.warnings = problems.map((p) => p.message);
  }
  return summary;
}

/** The one-line text report of a valid file, safe to print to a terminal. */
export function renderConfigCheck(result: ConfigCheckResult): string {
  const what =
    result.backend === null
      ? "no fleet backend: local-only mode"
      : `${result.backend} backend (${result.endpoints.length} endpoint${
          result.endpoints.length === 1 ? "" : "s"
        }, namespace ${result.namespace ?? ""})`;
  return [
    `configuration ${result.file} is valid: ${what}`,
    ...(result.warnings ?? []).map((w) => `warning: ${w}`),
  ]
    .map(escapeForTerminal)
    .join("\n");
}
