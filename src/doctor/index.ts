/**
 * `ogygia doctor`: which of the moving parts (configuration, backend
 * endpoints, this host's name, build-revision files, the publisher, clock,
 * ogygia-irisd and Nix's use of it) is wrong, and how to fix it.
 */

import { readFile } from "node:fs/promises";

import type { OutputLine } from "../command/index.js";
import { parseTomlText } from "../config/index.js";
import { OgygiaError, escapeForTerminal, hasErrorCode } from "../core/index.js";
import { DEFAULT_IRISD_CONFIG_PATH, IRISD_CONFIG_ENV } from "../iris/index.js";
import {
  runChecks,
  type CheckResult,
  type CheckStatus,
  type DoctorExtras,
  type DoctorOptions,
} from "./checks.js";

export type { CheckResult, CheckStatus, DoctorOptions } from "./checks.js";

export interface DoctorReport {
  checks: CheckResult[];
  /** False when any check failed. */
  ok: boolean;
}

/** The strings of `table.key` in parsed TOML, or none. */
function strings(data: unknown, table: string, key: string): string[] {
  const section = (data as Record<string, unknown> | undefined)?.[table];
  const value = (section as Record<string, unknown> | undefined)?.[key];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/**
 * irisd's own configuration, when this host has one: the keys Nix must trust
 * (`[trust] trusted_keys`) and the peers to ask (`[peers] urls`). Read, not
 * validated: that is `ogygia-irisd --check-config`'s job, and loading the
 * daemon's schema would load the daemon.
 */
async function irisdExtras(env: NodeJS.ProcessEnv): Promise<DoctorExtras> {
  const fromEnv = env[IRISD_CONFIG_ENV];
  const file = fromEnv !== undefined && fromEnv !== "" ? fromEnv : DEFAULT_IRISD_CONFIG_PATH;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "EACCES", "EPERM")) return {};
    throw err;
  }
  try {
    const data = await parseTomlText(text, file);
    return {
      irisdTrustedKeys: strings(data, "trust", "trusted_keys"),
      irisdPeers: strings(data, "peers", "urls"),
    };
  } catch (err) {
    // A broken file is the daemon's to report; doctor checks the rest without it.
    if (err instanceof OgygiaError) return {};
    throw err;
  }
}

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const extras = await irisdExtras(options.env);
  const checks = await runChecks({ ...options, ...extras });
  return { checks, ok: checks.every((c) => c.status !== "fail") };
}

const MARK: Record<CheckStatus, string> = { ok: "ok  ", warn: "warn", fail: "FAIL" };

export function renderDoctorText(report: DoctorReport): OutputLine[] {
  const out: OutputLine[] = [];
  for (const check of report.checks) {
    out.push({
      stream: "stdout",
      text: `${MARK[check.status]}  ${escapeForTerminal(check.title)}: ${escapeForTerminal(check.found)}`,
    });
    if (check.fix !== undefined) {
      out.push({ stream: "stdout", text: `      fix: ${escapeForTerminal(check.fix)}` });
    }
  }
  const count = (s: CheckStatus): number => report.checks.filter((c) => c.status === s).length;
  out.push({
    stream: "stdout",
    text: `${count("ok")} ok, ${count("warn")} warning${count("warn") === 1 ? "" : "s"}, ${count("fail")} failed`,
  });
  return out;
}

export function doctorJson(report: DoctorReport): unknown {
  return { ok: report.ok, checks: report.checks };
}
