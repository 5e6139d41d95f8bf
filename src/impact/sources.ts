/**
 * Where the impact commands read from: the configuration, the local store
 * database (when this host has one), and the local ogygia-irisd.
 */

import { existsSync, lstatSync, readlinkSync } from "node:fs";
import path from "node:path";

import { loadContext } from "../command/index.js";
import type { OgygiaConfig } from "../config/index.js";
import { OgygiaError } from "../core/index.js";
import { DEFAULT_IRISD_URL } from "../iris/index.js";
import {
  isStorePath,
  openStoreDb,
  openClosureDb,
  storeDbPath,
  storeLocation,
  type StoreDb,
} from "../nix/index.js";
import { ClosureReader } from "./closure.js";
import { IrisdClient } from "./http.js";
import { StoreFiles } from "./store-files.js";

export interface SourceOptions {
  /** `--root`: where the default configuration is found. */
  root: string;
  configFile: string | undefined;
  env: NodeJS.ProcessEnv;
  /** `--irisd`, over `$OGYGIA_IRISD_URL`, over `[ogygia.impact] irisd_url`. */
  irisdUrl: string | undefined;
  /** `--store`: the physical root of the local store (default `/`). */
  storeRoot: string;
}

export interface Sources {
  config: OgygiaConfig | undefined;
  store: StoreDb | undefined;
  irisd: IrisdClient;
  reader: ClosureReader;
  files: StoreFiles;
  close(): void;
}

/** Opens what the impact commands read. The local store is optional; irisd is contacted lazily. */
export async function openSources(options: SourceOptions): Promise<Sources> {
  const { config } = await loadContext({
    root: options.root,
    configFile: options.configFile,
    env: options.env,
  });
  const fromEnv = options.env.OGYGIA_IRISD_URL?.trim();
  const baseUrl =
    options.irisdUrl ??
    (fromEnv !== undefined && fromEnv !== "" ? fromEnv : undefined) ??
    config?.impact?.irisdUrl ??
    DEFAULT_IRISD_URL;
  if (!/^https?:\/\/[^/?#]+\/?$/.test(baseUrl)) {
    throw new OgygiaError("ERR_OGYGIA_USAGE", `irisd URL '${baseUrl}' is not an http:// base URL`, {
      hint: `Write it like ${DEFAULT_IRISD_URL}.`,
      exitCode: 2,
    });
  }
  const location = storeLocation({ root: path.resolve(options.storeRoot) });
  const dbFile = storeDbPath(location);
  const store = existsSync(dbFile) ? openStoreDb({ root: location.root }) : undefined;
  const closureDb = store === undefined ? undefined : openClosureDb(dbFile);
  const irisd = new IrisdClient({ baseUrl, concurrency: config?.impact?.concurrency });
  return {
    config,
    store,
    irisd,
    reader: new ClosureReader({
      store,
      closureDb,
      irisd,
      // The reading irisd without POST /closure forces: kept for comparison (bench/impact).
      perPath: options.env.OGYGIA_IMPACT_PER_PATH === "1",
    }),
    files: new StoreFiles({ store, irisd }),
    close() {
      irisd.close();
      closureDb?.close();
      store?.close();
    },
  };
}

/**
 * The store path a path argument names: a store path (a file inside one
 * names its top), or a link such as `./result` followed until it names one.
 */
export function storePathOfArgument(arg: string): string {
  let current = arg;
  for (let hop = 0; hop < 40; hop++) {
    const top = /^\/nix\/store\/[^/]+/.exec(current)?.[0];
    if (top !== undefined && isStorePath(top)) return top;
    let target: string;
    try {
      if (!lstatSync(current).isSymbolicLink()) break;
      target = readlinkSync(current);
    } catch {
      break;
    }
    current = path.isAbsolute(target) ? target : path.join(path.dirname(current), target);
  }
  throw new OgygiaError("ERR_OGYGIA_USAGE", `'${arg}' is not a store path or a link to one`, {
    hint: "Give a /nix/store path, a link such as ./result, or a host (web01, web01:booted).",
    exitCode: 2,
  });
}
