/**
 * The wire contract of irisd's JSON endpoints and its default port, shared
 * by the daemon (which sends these answers) and the CLI's client
 * (`src/irisctl`, which checks them). Types and constants only: importing
 * it loads none of the daemon.
 */

/** The port irisd listens on unless configured otherwise. */
export const DEFAULT_IRISD_PORT = 35742;

/** The daemon's default `[server] listen` address. */
export const DEFAULT_LISTEN = `127.0.0.1:${DEFAULT_IRISD_PORT}`;

/** Where the CLI finds the local daemon unless told otherwise. */
export const DEFAULT_IRISD_URL = `http://127.0.0.1:${DEFAULT_IRISD_PORT}`;

/** The daemon's configuration file unless `--config` or `$OGYGIA_IRISD_CONFIG` names another. */
export const DEFAULT_IRISD_CONFIG_PATH = "/etc/ogygia-irisd/config.toml";

/** The environment variable naming the daemon's configuration file. */
export const IRISD_CONFIG_ENV = "OGYGIA_IRISD_CONFIG";

/** One peer's verified answer in `GET /providers/<hash>`. */
export interface Provider {
  /** The peer's base URL, as the daemon is configured with it. */
  url: string;
  storePath: string;
  narHash: string;
  narSize: number;
  /** Names of the trusted keys whose signatures verified. */
  signatures: string[];
}

/** The JSON body of `GET /providers/<hash>`. */
export interface ProvidersAnswer {
  hash: string;
  /** Whether the daemon's own store serves the path. */
  local: boolean;
  providers: Provider[];
}

/** The JSON body of `POST /rescan`. */
export interface RescanAnswer {
  /** Paths in the daemon's index after the rescan. */
  indexed: number;
  /** Paths the rescan added. */
  added: number;
  /** Valid paths the daemon will not serve (unsigned, not content-addressed). */
  notServeable: string[];
  /** Paths that are not valid in the daemon's store. */
  missing: string[];
}

/** The JSON body of `GET /health`: 200 when `ready`, 503 while the index is built. */
export interface HealthAnswer {
  status: "ready" | "starting";
  /** The local index (what `/bloom` publishes) is built. */
  indexReady: boolean;
  /** Peers known now (configured and found in the registry). */
  peers: number;
  /** Seconds since the daemon started. */
  uptimeSecs: number;
}

/** The JSON body of `GET /version`. */
export interface VersionAnswer {
  name: "ogygia-irisd";
  version: string;
  /** What this daemon serves beyond `nix-cache-info`, narinfo and NAR, e.g. `listing`, `log`. */
  features: string[];
}
