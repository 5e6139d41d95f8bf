/**
 * The CLI's client for a running `ogygia-irisd`: `GET /providers/<hash>` and
 * `POST /rescan`. Answers are checked before use: a daemon is trusted, but a
 * wrong URL can point at anything.
 */

import { OgygiaError, errorMessage, escapeForTerminal, redactUrl } from "../core/index.js";
import {
  DEFAULT_IRISD_URL,
  type Provider,
  type ProvidersAnswer,
  type RescanAnswer,
} from "../iris/index.js";
import { DEFAULT_STORE_DIR, isHashPart, isStorePath } from "../nix/index.js";

export { DEFAULT_IRISD_URL, type Provider, type ProvidersAnswer, type RescanAnswer };

/** The environment variable that overrides `DEFAULT_IRISD_URL`. */
export const IRISD_URL_ENV = "OGYGIA_IRISD_URL";

/** The daemon's base URL: `--irisd`, else `$OGYGIA_IRISD_URL`, else the default. */
export function irisdBaseUrl(flag: string | undefined, env: NodeJS.ProcessEnv): URL {
  const fromEnv = env[IRISD_URL_ENV]?.trim();
  const text = flag ?? (fromEnv === undefined || fromEnv === "" ? DEFAULT_IRISD_URL : fromEnv);
  const source = flag !== undefined ? "--irisd" : fromEnv ? `$${IRISD_URL_ENV}` : "default";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `${source}: ${JSON.stringify(redactUrl(text))} is not a URL`,
      { hint: `Write it like ${DEFAULT_IRISD_URL}.`, exitCode: 2 },
    );
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash) {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `${source}: ${JSON.stringify(redactUrl(text))} must be an http:// or https:// base URL`,
      { hint: `Write it like ${DEFAULT_IRISD_URL}.`, exitCode: 2 },
    );
  }
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return url;
}

function unreachable(base: URL, err: unknown): OgygiaError {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const detail =
    err instanceof Error && err.name === "TimeoutError" ? "no answer in time" : errorMessage(cause);
  return new OgygiaError(
    "ERR_OGYGIA_IRISD",
    `cannot reach ogygia-irisd at ${redactUrl(base.href)}: ${detail}`,
    {
      hint: `Is ogygia-irisd running there? Pass --irisd URL or set $${IRISD_URL_ENV}.`,
      cause: err,
    },
  );
}

/** One request to the daemon, returning its JSON body; non-2xx answers are errors. */
async function requestJson(
  base: URL,
  path: string,
  init: { method: "GET" | "POST"; body?: string; timeoutMs: number },
): Promise<unknown> {
  const url = new URL(path, base);
  let response: Response;
  try {
    response = await fetch(url, {
      method: init.method,
      headers: init.body === undefined ? {} : { "content-type": "application/json" },
      ...(init.body === undefined ? {} : { body: init.body }),
      signal: AbortSignal.timeout(init.timeoutMs),
    });
  } catch (err) {
    throw unreachable(base, err);
  }
  let text: string;
  try {
    text = await response.text();
  } catch (err) {
    throw unreachable(base, err);
  }
  const where = `${init.method} ${redactUrl(url.href)}`;
  if (!response.ok) {
    const snippet = escapeForTerminal(text.trim().slice(0, 200));
    throw new OgygiaError(
      "ERR_OGYGIA_IRISD",
      `${where} answered ${response.status} ${response.statusText}${snippet ? `: ${snippet}` : ""}`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new OgygiaError("ERR_OGYGIA_IRISD", `${where} answered something that is not JSON`, {
      hint: "Check that the URL points at ogygia-irisd.",
    });
  }
}

function malformed(what: string, problem: string): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD", `malformed answer to ${what}: ${problem}`, {
    hint: "Check that the URL points at ogygia-irisd, and that it is as new as this CLI.",
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringList(value: unknown, check: (s: string) => boolean): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === "string" && check(v))
    ? (value as string[])
    : undefined;
}

/** Checks the shape of a `/providers` answer. */
export function parseProvidersAnswer(body: unknown, hash: string): ProvidersAnswer {
  const what = `/providers/${hash}`;
  if (!isRecord(body)) throw malformed(what, "not a JSON object");
  if (body.hash !== hash) throw malformed(what, `it is about ${JSON.stringify(body.hash)}`);
  if (typeof body.local !== "boolean") throw malformed(what, "`local` is not a boolean");
  if (!Array.isArray(body.providers)) throw malformed(what, "`providers` is not an array");
  const providers = body.providers.map((entry: unknown, i): Provider => {
    const at = `providers[${i}]`;
    if (!isRecord(entry)) throw malformed(what, `${at} is not an object`);
    const { url, storePath, narHash, narSize, signatures } = entry;
    if (typeof url !== "string") throw malformed(what, `${at}.url is not a string`);
    if (typeof storePath !== "string" || !isStorePath(storePath)) {
      throw malformed(what, `${at}.storePath is not a store path`);
    }
    if (!storePath.startsWith(`${DEFAULT_STORE_DIR}/${hash}-`)) {
      throw malformed(what, `${at}.storePath is not the path asked for`);
    }
    if (typeof narHash !== "string") throw malformed(what, `${at}.narHash is not a string`);
    if (typeof narSize !== "number" || !Number.isSafeInteger(narSize) || narSize < 0) {
      throw malformed(what, `${at}.narSize is not a size`);
    }
    const names = stringList(signatures, () => true);
    if (!names) throw malformed(what, `${at}.signatures is not a list of key names`);
    return { url, storePath, narHash, narSize, signatures: names };
  });
  return { hash, local: body.local, providers };
}

/** Checks the shape of a `/rescan` answer. */
export function parseRescanAnswer(body: unknown): RescanAnswer {
  const what = "/rescan";
  if (!isRecord(body)) throw malformed(what, "not a JSON object");
  const count = (key: "indexed" | "added"): number => {
    const value = body[key];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw malformed(what, `\`${key}\` is not a count`);
    }
    return value;
  };
  const paths = (key: "notServeable" | "missing"): string[] => {
    const list = stringList(body[key] ?? [], (p) => isStorePath(p));
    if (!list) throw malformed(what, `\`${key}\` is not a list of store paths`);
    return list;
  };
  return {
    indexed: count("indexed"),
    added: count("added"),
    notServeable: paths("notServeable"),
    missing: paths("missing"),
  };
}

/** Asks the daemon which peers (and whether it) can serve the path with `hash`. */
export async function fetchProviders(
  base: URL,
  hash: string,
  { timeoutMs = 10_000 } = {},
): Promise<ProvidersAnswer> {
  if (!isHashPart(hash)) throw new Error(`fetchProviders: not a hash part: ${hash}`);
  const body = await requestJson(base, `providers/${hash}`, { method: "GET", timeoutMs });
  return parseProvidersAnswer(body, hash);
}

/** Asks the daemon to index `paths` at once (all of its store when empty). */
export async function requestRescan(
  base: URL,
  paths: readonly string[],
  { timeoutMs = 120_000 } = {},
): Promise<RescanAnswer> {
  const body = await requestJson(base, "rescan", {
    method: "POST",
    body: JSON.stringify({ paths }),
    timeoutMs,
  });
  return parseRescanAnswer(body);
}
