/**
 * The URL a host's irisd serves its peers on, as its publisher writes it to
 * the fleet registry (`iris_url`): `[server] advertise` when set, else the
 * first `[server] listen` address that another host can reach (not
 * loopback, not a wildcard, not a Unix socket, not port 0). Read from the
 * daemon's configuration as plain TOML: the publisher must not load the
 * daemon.
 */

import { readFile as readFileCallback } from "node:fs";
import { promisify } from "node:util";

import { parseHostPort, parseTomlText } from "../config/index.js";
import { OgygiaError, checkHttpUrl, hasErrorCode, isLoopbackIPv4 } from "../core/index.js";

// node:fs's callback form, not node:fs/promises, and no node:net: every
// command's start loads this module, and those two load streams, readline
// and sockets (a few milliseconds of each start).
const readFile = promisify(readFileCallback);

function reachable(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === "localhost" || lower === "0.0.0.0" || lower === "::" || lower === "") return false;
  if (isLoopbackIPv4(lower)) return false;
  if (lower === "::1" || lower.startsWith("::ffff:127.")) return false;
  return true;
}

/** The advertised URL of an irisd configured with `advertise` and `listen`; undefined when none fits. */
export function advertisedIrisUrl(server: {
  advertise?: unknown;
  listen?: unknown;
}): string | undefined {
  if (typeof server.advertise === "string" && server.advertise !== "") {
    return server.advertise.replace(/\/+$/, "");
  }
  const listen = Array.isArray(server.listen) ? server.listen : [];
  for (const address of listen) {
    if (typeof address !== "string" || address.startsWith("unix:")) continue;
    const parsed = parseHostPort(address);
    if (parsed === undefined || parsed.port === 0 || !reachable(parsed.host)) continue;
    const host = parsed.host.includes(":") ? `[${parsed.host}]` : parsed.host;
    return `http://${host}:${parsed.port}`;
  }
  return undefined;
}

/** Checks an `[server] advertise` value. */
export function checkAdvertiseUrl(value: string): string | undefined {
  if (value === "") return undefined;
  return checkHttpUrl(value, { example: "http://10.0.0.2:35742" });
}

/**
 * The advertised URL from the irisd configuration file `file`: undefined
 * when the file does not exist (no irisd here) or advertises nothing.
 * Throws OgygiaError when it cannot be read or parsed.
 */
export async function irisUrlFromConfigFile(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return undefined;
    throw new OgygiaError(
      "ERR_OGYGIA_CONFIG_INVALID",
      `cannot read irisd's configuration ${file}`,
      {
        cause: err,
      },
    );
  }
  const raw = (await parseTomlText(text, file)) as { server?: Record<string, unknown> };
  const url = advertisedIrisUrl(raw.server ?? {});
  if (url !== undefined && checkAdvertiseUrl(url) !== undefined) return undefined;
  return url;
}
