/**
 * `iris_url`: the URL this host's ogygia-irisd serves its peers on, so that
 * daemons with `[peers] registry = true` find each other through the fleet
 * registry. Read from irisd's configuration (`$OGYGIA_IRISD_CONFIG`, else
 * `<root>/etc/ogygia-irisd/config.toml`); no file, or nothing reachable to
 * advertise, publishes it as unknown (its key is deleted).
 */

import path from "node:path";

import { errorMessage } from "../core/index.js";
import { irisUrlFromConfigFile } from "../iris/index.js";

/** The environment variable naming irisd's configuration (as the daemon reads it). */
const IRISD_CONFIG_ENV = "OGYGIA_IRISD_CONFIG";

/** The URL to publish as `iris_url` (null: none), and why it could not be read, if so. */
export async function readIrisUrl(
  root: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ url: string | null; problem?: string }> {
  const fromEnv = env[IRISD_CONFIG_ENV];
  const file =
    fromEnv !== undefined && fromEnv !== ""
      ? fromEnv
      : path.join(root, "etc/ogygia-irisd/config.toml");
  try {
    return { url: (await irisUrlFromConfigFile(file)) ?? null };
  } catch (err) {
    return { url: null, problem: `irisd's configuration ${file}: ${errorMessage(err)}` };
  }
}
