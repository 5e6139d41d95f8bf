/**
 * `ogygia iris providers`: which peers can serve a store path, as the local
 * daemon sees it.
 */

import { realpath } from "node:fs/promises";

import { OgygiaError, escapeForTerminal, hasErrorCode, redactUrl } from "../core/index.js";
import {
  DEFAULT_STORE_DIR,
  isHashPart,
  parseStorePath,
  parseStorePathBaseName,
} from "../nix/index.js";
import { fetchProviders, type ProvidersAnswer } from "./client.js";

function badTarget(target: string, why: string): OgygiaError {
  return new OgygiaError(
    "ERR_OGYGIA_USAGE",
    `${JSON.stringify(escapeForTerminal(target))} ${why}`,
    {
      hint: "Give a hash part (32 characters, as in /nix/store/<hash>-name), a store path, or a link to one such as ./result.",
      exitCode: 2,
    },
  );
}

/** The store path named by `text` (or by a path inside it), if it names one. */
function storePathOf(text: string): string | undefined {
  const prefix = `${DEFAULT_STORE_DIR}/`;
  if (!text.startsWith(prefix)) return undefined;
  const baseName = text.slice(prefix.length).split("/")[0] ?? "";
  return parseStorePath(`${prefix}${baseName}`).path;
}

/**
 * The hash part a user means: a hash part, `<hash>-<name>`, a store path or a
 * path inside one, or a file (like `./result`) that links into the store.
 */
export async function resolveHashPart(target: string): Promise<string> {
  const text = target.trim();
  if (isHashPart(text)) return text;
  try {
    const path = storePathOf(text);
    if (path !== undefined) return parseStorePath(path).hashPart;
    if (/^[0-9a-z]{32}-/.test(text) && !text.includes("/")) {
      return parseStorePathBaseName(text).hashPart;
    }
  } catch (err) {
    if (err instanceof OgygiaError)
      throw badTarget(target, `is not a valid store path: ${err.message}`);
    throw err;
  }
  let real: string;
  try {
    real = await realpath(text);
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) {
      throw badTarget(target, "is neither a hash part nor a store path, and no such file exists");
    }
    throw err;
  }
  const path = storePathOf(real);
  if (path === undefined)
    throw badTarget(target, `resolves to ${real}, which is not in ${DEFAULT_STORE_DIR}`);
  return parseStorePath(path).hashPart;
}

/** Looks the target up through the daemon at `base`. */
export async function queryProviders(base: URL, target: string): Promise<ProvidersAnswer> {
  return fetchProviders(base, await resolveHashPart(target));
}

function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit] ?? ""}`;
}

/** The answer as lines for a terminal. */
export function renderProviders(answer: ProvidersAnswer): string[] {
  const count = answer.providers.length;
  const peers = `${count} peer${count === 1 ? "" : "s"}`;
  const headline =
    answer.local && count > 0
      ? `${answer.hash}: in the local store, and on ${peers}`
      : answer.local
        ? `${answer.hash}: in the local store; no peer has it`
        : count > 0
          ? `${answer.hash}: not in the local store; on ${peers}`
          : `${answer.hash}: nobody has it (not in the local store, no peer confirmed it)`;
  const rows = answer.providers.map((p) => [
    escapeForTerminal(redactUrl(p.url)),
    escapeForTerminal(p.storePath),
    formatSize(p.narSize),
    p.signatures.length > 0
      ? `signed by ${p.signatures.map(escapeForTerminal).join(", ")}`
      : "content-addressed",
  ]);
  const widths = [0, 1, 2].map((i) => Math.max(0, ...rows.map((r) => (r[i] ?? "").length)));
  return [
    headline,
    ...rows.map(
      (r) => `  ${r.map((cell, i) => (i < 3 ? cell.padEnd(widths[i] ?? 0) : cell)).join("  ")}`,
    ),
  ];
}
