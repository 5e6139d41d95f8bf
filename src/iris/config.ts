/**
 * The daemon's configuration (`config.toml`): where it is, parsing and
 * validation. The pipeline is the CLI's (read → TOML → strict schema →
 * defaults → cross-field rules), with the same schema helpers, so every
 * error names the file, the dotted key and the line.
 *
 * `[peers]`, `[trust]`, `[cache]` and `[bloom]` configure the peer-to-peer
 * layer (docs/irisd.md, "Peer to peer").
 */

import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import path from "node:path";

import {
  boolean,
  integer,
  locateKeys,
  number,
  parseHostPort,
  parseTomlText,
  string,
  stringList,
  table,
  whereIs,
  describeValue,
  invalidAt,
  type Field,
  type FieldType,
  type SchemaContext,
} from "../config/index.js";
import { OgygiaError, checkHttpUrl, errorMessage, hasErrorCode } from "../core/index.js";
import { parsePublicKey } from "../nix/index.js";
import {
  DEFAULT_IRISD_CONFIG_PATH,
  DEFAULT_IRISD_PORT,
  DEFAULT_LISTEN,
  IRISD_CONFIG_ENV,
} from "./contract.js";
import { advertisedIrisUrl, checkAdvertiseUrl } from "./advertise.js";
import type { ListenAddress } from "./http/index.js";
import { limitsFrom, limitsSchema, type IrisdLimits } from "./limits-config.js";
import { LOG_THRESHOLDS, isLogThreshold, type LogThreshold } from "../log/index.js";

export const DEFAULT_CONFIG_PATH = DEFAULT_IRISD_CONFIG_PATH;
export const CONFIG_ENV = IRISD_CONFIG_ENV;
export const DEFAULT_PRIORITY = 30;

/** Exit status for a configuration the daemon refuses (sysexits' EX_CONFIG). */
export const EXIT_CONFIG = 78;

export { DEFAULT_LISTEN, type ListenAddress };

const CONFIG_HINT = "Fix the configuration file and start ogygia-irisd again.";

/** `unix:/absolute/path`: a Unix socket. */
const UNIX_PREFIX = "unix:";

function checkListen(value: string): string | undefined {
  if (value.startsWith(UNIX_PREFIX)) {
    const file = value.slice(UNIX_PREFIX.length);
    if (!path.isAbsolute(file)) {
      return `${JSON.stringify(value)}: a Unix socket is "unix:" and an absolute path, like "unix:/run/ogygia/irisd.sock"`;
    }
    // sockaddr_un holds 108 bytes, the last a NUL.
    if (Buffer.byteLength(file) > 107) return `${JSON.stringify(value)}: the path is too long`;
    return undefined;
  }
  const parsed = parseHostPort(value.replace(/:0$/, ":1"));
  if (parsed === undefined) {
    return `${JSON.stringify(value)} must be "host:port" or "[v6 address]:port", like "${DEFAULT_LISTEN}"`;
  }
  if (value.startsWith("[") && isIP(parsed.host) !== 6) {
    return `${JSON.stringify(value)}: ${parsed.host} is not an IPv6 address`;
  }
  return undefined;
}

function checkAbsolute(value: string): string | undefined {
  return path.isAbsolute(value) ? undefined : `${JSON.stringify(value)} must be an absolute path`;
}

function checkPeerUrl(value: string): string | undefined {
  return checkHttpUrl(value, { example: `http://10.0.0.2:${DEFAULT_IRISD_PORT}` });
}

function checkPublicKey(value: string): string | undefined {
  try {
    parsePublicKey(value, "trusted key");
    return undefined;
  } catch (err) {
    if (err instanceof OgygiaError) return errorMessage(err);
    throw err;
  }
}

/** The most `[server] workers` a daemon runs. */
export const MAX_WORKERS = 64;

/**
 * `[server] workers`: an integer from 1 to `MAX_WORKERS`, or `"auto"` (one
 * per CPU the process may use, at most `MAX_WORKERS`).
 */
function workersField(): Field<number | "auto"> {
  const description =
    "Processes serving the public listen addresses (node:cluster, connections spread " +
    'round-robin): an integer from 1 to 64, or "auto" (one per CPU). 1: one process, as ' +
    "without the key. With more, they answer narinfos and NARs of the local store " +
    "themselves and pass everything else to the main process.";
  return {
    description,
    typeName: `integer from 1 to ${MAX_WORKERS}, or "auto"`,
    missing: () => 1,
    parse(value, path, ctx) {
      if (value === "auto") return "auto";
      if (typeof value !== "number" || !Number.isInteger(value)) {
        throw invalidAt(
          path,
          ctx,
          `expected an integer from 1 to ${MAX_WORKERS} or "auto", got ${describeValue(value)}`,
        );
      }
      if (value < 1 || value > MAX_WORKERS) {
        throw invalidAt(path, ctx, `must be from 1 to ${MAX_WORKERS} or "auto", got ${value}`);
      }
      return value;
    },
  };
}

/** The number of worker processes `[server] workers` asks for on this host. */
export function workerCount(workers: number | "auto", cpus = availableParallelism()): number {
  return workers === "auto" ? Math.max(1, Math.min(MAX_WORKERS, cpus)) : workers;
}

/** The values of `[server] compression`. */
export const COMPRESSIONS = ["none", "zstd"] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export const irisdConfigSchema = table({
  description: "The ogygia-irisd configuration file.",
  fields: {
    server: table({
      description: "The HTTP server.",
      fields: {
        listen: stringList({
          description:
            'Addresses to listen on, "host:port", "[v6]:port" or "unix:/path" (a Unix socket, ' +
            "for clients on this host). Port 0 picks a free port (the log's `listening` line says which).",
          default: [DEFAULT_LISTEN],
          minItems: 1,
          check: checkListen,
        }),
        advertise: string({
          description:
            "The URL peers reach this daemon on, published to the fleet registry as iris_url " +
            "by ogygia publish. Empty: the first listen address that is not loopback, a " +
            "wildcard, a Unix socket or port 0.",
          default: "",
          check: checkAdvertiseUrl,
        }),
        priority: integer({
          description: "`Priority` in nix-cache-info: lower is preferred (cache.nixos.org is 40).",
          default: DEFAULT_PRIORITY,
          min: 0,
          max: 10_000,
        }),
        log_level: string({
          description: `Least severe log level written: ${LOG_THRESHOLDS.join(", ")}.`,
          default: "info",
          check: (v) =>
            isLogThreshold(v) ? undefined : `must be one of ${LOG_THRESHOLDS.join(", ")}`,
        }),
        shutdown_timeout_secs: integer({
          description:
            "On SIGTERM, seconds to let transfers in flight finish before their connections are cut.",
          default: 30,
          min: 0,
          max: 3600,
        }),
        compression: string({
          description:
            'NARs served compressed: "none" (the default, right on a LAN: compressing costs ' +
            'more CPU than the bytes saved) or "zstd" (for slow links: a narinfo names the ' +
            "zstd file, compressed on its first request and kept under [cache] dir/zstd).",
          default: "none",
          check: (v) =>
            (COMPRESSIONS as readonly string[]).includes(v)
              ? undefined
              : `must be one of ${COMPRESSIONS.map((c) => `"${c}"`).join(", ")}`,
        }),
        workers: workersField(),
        helper_thread_nice: integer({
          description:
            "Nice value (Linux) of the daemon's helper threads: V8's garbage collector and " +
            "compilers, and libuv's pool that writes the NAR cache. They yield to the Nix " +
            "client sharing the host and to the thread serving requests; 0 leaves them as they are.",
          default: 19,
          min: 0,
          max: 19,
        }),
      },
    }),
    store: table({
      description: "The Nix store served.",
      fields: {
        root: string({
          description:
            "Physical root of the store: `/` for the machine's store, or a chroot store's " +
            "directory (files under <root>/nix/store, database at <root>/nix/var/nix/db/db.sqlite).",
          default: "/",
          check: checkAbsolute,
        }),
        nar_memory_cache_bytes: integer({
          description:
            "Memory for small NARs (up to 256 KiB each) kept between requests, verified " +
            "against their NAR hash; 0 turns the cache off. With [server] workers = N, the " +
            "primary and each worker keep their own (up to N + 1 times this in all).",
          default: 64 * 1024 * 1024,
          min: 0,
          max: 64 * 1024 ** 3,
        }),
        log_dir: string({
          description:
            "Nix's build logs, served at /log/<drv>: `<log dir>/<xx>/<rest of the drv name>[.bz2]`. " +
            'Empty: <root>/nix/var/log/nix/drvs (the machine\'s: "/nix/var/log/nix/drvs").',
          default: "",
          check: (v) => (v === "" ? undefined : checkAbsolute(v)),
        }),
      },
    }),
    signing: table({
      description: "Keys that sign served narinfos on the fly.",
      fields: {
        secret_key_files: stringList({
          description:
            "Nix secret key files (`nix key generate-secret`). With a key, every valid path is " +
            "serveable and its narinfo carries this key's signature besides the stored ones.",
          default: [],
          check: checkAbsolute,
        }),
      },
    }),
    peers: table({
      description: "Other irisd daemons this one fetches paths through.",
      fields: {
        urls: stringList({
          description: `Base URLs of peer irisd daemons, like http://10.0.0.2:${DEFAULT_IRISD_PORT}.`,
          default: [],
          check: checkPeerUrl,
        }),
        registry: boolean({
          description:
            "Also take as peers every host of the fleet registry (Ogygia's etcd or ZooKeeper) " +
            "whose publisher is alive and publishes iris_url, this host excepted; watched, so " +
            "hosts come and go as they start and stop.",
          default: false,
        }),
        ogygia_config: string({
          description:
            "With registry: Ogygia's configuration file naming the fleet backend. Empty: " +
            "$OGYGIA_CONFIG, else /etc/ogygia/config.toml (as the CLI).",
          default: "",
          check: (v) => (v === "" ? undefined : checkAbsolute(v)),
        }),
        read_ahead: boolean({
          description:
            "Once a client's narinfo came from peers, look up the narinfos of its closure " +
            "ahead of the client (Nix asks for one path at a time).",
          default: true,
        }),
        read_ahead_nar_bytes: integer({
          description:
            "With read_ahead: download the NAR of a narinfo a client asked for, ahead of " +
            "its request, when at most this large; 0: never.",
          default: 1024 * 1024,
          min: 0,
          max: 32 * 1024 * 1024,
        }),
      },
    }),
    trust: table({
      description: "Which peer answers are believed.",
      fields: {
        trusted_keys: stringList({
          description:
            "Public keys (`name:base64`) whose signatures make a peer's path trusted; " +
            "content-addressed paths need none.",
          default: [],
          check: checkPublicKey,
        }),
      },
    }),
    cache: table({
      description: "The NAR cache: verified NARs fetched from peers (used only with peers).",
      fields: {
        dir: string({
          description: "Folder of NARs fetched from peers (created if missing).",
          default: "/var/cache/ogygia-irisd",
          check: checkAbsolute,
        }),
        max_size_bytes: integer({
          description:
            "Size the NAR cache is kept under; a larger NAR is streamed but not kept. 0: keep nothing.",
          default: 10 * 1024 ** 3,
          min: 0,
        }),
        time_to_idle_secs: integer({
          description: "A cached NAR not served for this long is evicted.",
          default: 7 * 86_400,
          min: 1,
        }),
      },
    }),
    bloom: table({
      description: "The bloom filters this daemon publishes and fetches.",
      fields: {
        false_positive_rate: number({
          description: "Target false-positive rate of the local filter.",
          default: 0.01,
          min: 1e-9,
          max: 0.5,
        }),
        peer_ttl_secs: integer({
          description: "Seconds a peer's filter is used before it is fetched again.",
          default: 60,
          min: 1,
          max: 86_400,
        }),
      },
    }),
    limits: limitsSchema,
  },
});

type RawConfig = FieldType<typeof irisdConfigSchema>;

export interface IrisdConfig {
  /** The file read, or undefined when the default file was absent (all defaults). */
  path: string | undefined;
  server: {
    listen: ListenAddress[];
    /** The URL peers reach this daemon on, if any (`advertise`, else a reachable listen address). */
    advertise: string | undefined;
    priority: number;
    logLevel: LogThreshold;
    shutdownTimeoutSecs: number;
    helperThreadNice: number;
    /** Processes serving the public addresses (`[server] workers`, "auto" resolved): 1 is one process. */
    workers: number;
    /** NARs served compressed (`[server] compression`). */
    compression: Compression;
  };
  store: { root: string; narMemoryCacheBytes: number; logDir: string | undefined };
  signing: { secretKeyFiles: string[] };
  peers: {
    urls: string[];
    /** Peers also from the fleet registry. */
    registry: boolean;
    /** Ogygia's configuration file for the registry; undefined: as the CLI finds it. */
    ogygiaConfig: string | undefined;
    readAhead: boolean;
    readAheadNarBytes: number;
  };
  trust: { trustedKeys: string[] };
  cache: { dir: string; maxSizeBytes: number; timeToIdleSecs: number };
  bloom: { falsePositiveRate: number; peerTtlSecs: number };
  limits: IrisdLimits;
}

function configError(message: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD_CONFIG", message, {
    hint: CONFIG_HINT,
    cause,
    exitCode: EXIT_CONFIG,
  });
}

function toListen(text: string): ListenAddress {
  if (text.startsWith(UNIX_PREFIX)) {
    return { host: "", port: 0, text, socketPath: path.normalize(text.slice(UNIX_PREFIX.length)) };
  }
  const zero = text.endsWith(":0");
  const parsed = parseHostPort(zero ? `${text.slice(0, -2)}:1` : text);
  if (parsed === undefined) throw new Error(`toListen: unchecked address ${text}`);
  return { host: parsed.host, port: zero ? 0 : parsed.port, text };
}

function crossChecks(raw: RawConfig, ctx: SchemaContext): void {
  const seen = new Set<string>();
  for (const address of raw.server.listen) {
    const { host, port, socketPath } = toListen(address);
    const key = socketPath ?? `${host.toLowerCase()}:${port}`;
    if ((port !== 0 || socketPath !== undefined) && seen.has(key)) {
      throw configError(
        `${whereIs(["server", "listen"], ctx)}: server.listen: ${JSON.stringify(address)} is listed twice`,
      );
    }
    seen.add(key);
  }
  const names = new Map<string, string>();
  for (const text of raw.trust.trusted_keys) {
    const key = parsePublicKey(text, "trusted key");
    const other = names.get(key.name);
    if (other !== undefined && other !== text) {
      throw configError(
        `${whereIs(["trust", "trusted_keys"], ctx)}: trust.trusted_keys: two different keys are named '${key.name}'`,
      );
    }
    names.set(key.name, text);
  }
}

/** Parses and validates configuration text; `file` names it in errors. */
export async function parseIrisdConfig(
  text: string,
  file: string | undefined,
): Promise<IrisdConfig> {
  const shown = file ?? DEFAULT_CONFIG_PATH;
  const ctx: SchemaContext = { file: shown, lines: locateKeys(text) };
  let raw: RawConfig;
  try {
    raw = irisdConfigSchema.parse(await parseTomlText(text, shown), [], ctx);
  } catch (err) {
    // The schema helpers speak for the CLI's file; same message, the daemon's code and exit status.
    if (
      err instanceof OgygiaError &&
      (err.code === "ERR_OGYGIA_CONFIG_INVALID" || err.code === "ERR_OGYGIA_CONFIG_PARSE")
    ) {
      throw configError(err.message, err);
    }
    throw err;
  }
  crossChecks(raw, ctx);
  return {
    path: file,
    server: {
      listen: raw.server.listen.map(toListen),
      advertise: advertisedIrisUrl({ advertise: raw.server.advertise, listen: raw.server.listen }),
      priority: raw.server.priority,
      logLevel: raw.server.log_level as LogThreshold,
      shutdownTimeoutSecs: raw.server.shutdown_timeout_secs,
      helperThreadNice: raw.server.helper_thread_nice,
      workers: workerCount(raw.server.workers),
      compression: raw.server.compression as Compression,
    },
    store: {
      root: raw.store.root,
      narMemoryCacheBytes: raw.store.nar_memory_cache_bytes,
      logDir: raw.store.log_dir === "" ? undefined : raw.store.log_dir,
    },
    signing: { secretKeyFiles: raw.signing.secret_key_files },
    peers: {
      urls: raw.peers.urls,
      registry: raw.peers.registry,
      ogygiaConfig: raw.peers.ogygia_config === "" ? undefined : raw.peers.ogygia_config,
      readAhead: raw.peers.read_ahead,
      readAheadNarBytes: raw.peers.read_ahead_nar_bytes,
    },
    trust: { trustedKeys: raw.trust.trusted_keys },
    cache: {
      dir: raw.cache.dir,
      maxSizeBytes: raw.cache.max_size_bytes,
      timeToIdleSecs: raw.cache.time_to_idle_secs,
    },
    bloom: {
      falsePositiveRate: raw.bloom.false_positive_rate,
      peerTtlSecs: raw.bloom.peer_ttl_secs,
    },
    limits: limitsFrom(raw.limits),
  };
}

/** Where the configuration comes from. */
export interface IrisdConfigSource {
  path: string;
  /** `--config`, `$OGYGIA_IRISD_CONFIG` or `default`. */
  from: "--config" | `$${typeof CONFIG_ENV}` | "default";
}

/** `--config FILE`, else `$OGYGIA_IRISD_CONFIG`, else the default path. */
export function irisdConfigSource(
  flag: string | undefined,
  env: NodeJS.ProcessEnv,
): IrisdConfigSource {
  if (flag !== undefined) return { path: flag, from: "--config" };
  const fromEnv = env[CONFIG_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return { path: fromEnv, from: `$${CONFIG_ENV}` };
  return { path: DEFAULT_CONFIG_PATH, from: "default" };
}

/**
 * Reads and validates the configuration. A missing default file means all
 * defaults; a file named by `--config` or the environment must exist.
 */
export async function loadIrisdConfig(source: IrisdConfigSource): Promise<IrisdConfig> {
  let text: string;
  try {
    text = await readFile(source.path, "utf8");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) {
      if (source.from === "default") return parseIrisdConfig("", undefined);
      throw configError(`configuration file ${source.path} (from ${source.from}) does not exist`);
    }
    if (hasErrorCode(err, "EACCES", "EPERM", "EISDIR")) {
      throw configError(`cannot read configuration file ${source.path}: ${errorMessage(err)}`, err);
    }
    throw err;
  }
  return parseIrisdConfig(text, source.path);
}
