/**
 * `ogygia dashboard`: a long-running web view of the fleet. It follows the
 * backend with the status watch (the same configuration and report as
 * `ogygia status`), keeps each host's state changes in SQLite, and serves a
 * page that updates live over Server-Sent Events, a JSON API and /metrics.
 */

import { readFile } from "node:fs/promises";
import os from "node:os";

import { OgygiaError, isLoopbackIPv4 } from "../core/index.js";
import { LOG_LEVELS, createLogger, errorFields, isLogLevel, type Logger } from "../log/index.js";
import { statusJson, watchStatus } from "../status/index.js";
import type { DetectedHostname } from "../system/index.js";
import { defaultStateDir, openHistory } from "./history.js";
import { FleetHub } from "./live.js";
import { createMetrics } from "./metrics.js";
import { createDashboardServer } from "./server.js";
import type { FleetJson } from "./wire.js";

export { defaultStateDir } from "./history.js";

/** Where the dashboard listens unless told otherwise: loopback only. */
export const DEFAULT_LISTEN = "127.0.0.1:35743";

const DAY_MS = 86_400_000;
/** How often history is pruned while the dashboard runs. */
const PRUNE_EVERY_MS = 3_600_000;

/** Parses `--history-days`: a whole number of days, 0 for no pruning. */
export function parseHistoryDays(text: string): number {
  const days = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(days)) {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `--history-days ${text}: expected a whole number of days`,
      {
        hint: "For example --history-days 90, or 0 to keep all history.",
        exitCode: 2,
      },
    );
  }
  return days;
}

export interface Listen {
  host: string;
  port: number;
}

/** Parses `ADDR:PORT` (`[v6]:PORT` for IPv6). */
export function parseListen(text: string): Listen {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (host === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new OgygiaError("ERR_OGYGIA_USAGE", `--listen ${text}: expected ADDR:PORT`, {
      hint: `For example --listen ${DEFAULT_LISTEN}, or --listen [::1]:35743.`,
      exitCode: 2,
    });
  }
  return { host, port };
}

/** Whether only this machine can reach `host`. */
export function isLoopback(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === "localhost") return true;
  if (isLoopbackIPv4(lower)) return true;
  return lower === "::1" || lower === "0:0:0:0:0:0:0:1";
}

/** Reads the token; refuses an empty one. */
async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new OgygiaError(
      "ERR_OGYGIA_DASHBOARD_LISTEN",
      `cannot read the token file ${file}: ${(err as Error).message}`,
      { hint: "Pass --token-file with a file holding the bearer token.", cause: err },
    );
  }
  const token = text.trim();
  if (token === "" || /\s/.test(token)) {
    throw new OgygiaError(
      "ERR_OGYGIA_DASHBOARD_LISTEN",
      `the token file ${file} must hold one token (no spaces), and it ${token === "" ? "is empty" : "holds spaces"}`,
      { hint: "Write a long random token to it, e.g. 'openssl rand -hex 32 > FILE'." },
    );
  }
  return token;
}

export interface DashboardOptions {
  listen: string;
  root: string;
  configFile?: string | undefined;
  stateDir?: string | undefined;
  tokenFile?: string | undefined;
  /** Days of history kept (each host keeps its newest entry); 0 keeps everything. */
  historyDays: number;
  env: NodeJS.ProcessEnv;
  hostname?: Promise<DetectedHostname>;
  log: Logger;
  /** Receives the function that stops the dashboard (for signal handlers). */
  onStart?: (stop: () => void) => void;
  /** Called once listening, with the bound address. */
  onListening?: (address: Listen) => void;
}

/** Runs the dashboard until stopped. Throws `OgygiaError` when it cannot start. */
export async function runDashboard(options: DashboardOptions): Promise<void> {
  const listen = parseListen(options.listen);
  if (!isLoopback(listen.host) && options.tokenFile === undefined) {
    throw new OgygiaError(
      "ERR_OGYGIA_DASHBOARD_LISTEN",
      `refusing to listen on ${options.listen} without a token: other machines could read the fleet`,
      {
        hint: "Pass --token-file FILE (a bearer token), or listen on a loopback address such as 127.0.0.1.",
        exitCode: 2,
      },
    );
  }
  const token = options.tokenFile === undefined ? undefined : await readToken(options.tokenFile);
  const stateDir =
    options.stateDir ?? defaultStateDir(options.env, process.getuid?.() ?? 1000, os.homedir());
  const history = openHistory(stateDir);
  const hub = new FleetHub();
  const metrics = createMetrics(() => hub.fleet());
  const { log } = options;
  const stop = new AbortController();

  const server = createDashboardServer({
    hub,
    history,
    metrics,
    token,
    onError: (err, req) => {
      log.error({ ...errorFields(err), method: req.method, url: req.url }, "request failed");
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => {
        reject(
          new OgygiaError(
            "ERR_OGYGIA_DASHBOARD_LISTEN",
            `cannot listen on ${options.listen}: ${err.code ?? err.message}`,
            { hint: "Pick another address or port with --listen.", cause: err },
          ),
        );
      });
      server.listen(listen.port, listen.host, resolve);
    });
  } catch (err) {
    history.close();
    hub.close();
    throw err;
  }
  const address = server.address();
  const bound =
    address !== null && typeof address === "object"
      ? { host: address.address, port: address.port }
      : listen;
  log.info(
    {
      listen: `${bound.host}:${bound.port}`,
      stateDir,
      history: history.file,
      auth: token !== undefined,
    },
    "dashboard listening",
  );
  options.onListening?.(bound);
  options.onStart?.(() => {
    stop.abort();
  });

  // History older than the retention is pruned at the first good read,
  // then at most once an hour.
  let prunedAt = 0;
  const pruneHistory = (fleet: FleetJson): void => {
    if (options.historyDays === 0 || Date.now() - prunedAt < PRUNE_EVERY_MS) return;
    prunedAt = Date.now();
    const before = new Date(prunedAt - options.historyDays * DAY_MS);
    const removed = history.prune(before, new Set(fleet.hosts.map((h) => h.host)));
    if (removed > 0) log.info({ removed, before: before.toISOString() }, "history pruned");
  };

  let lastError: string | null = null;
  try {
    await watchStatus({
      root: options.root,
      configFile: options.configFile,
      env: options.env,
      ...(options.hostname === undefined ? {} : { hostname: options.hostname }),
      signal: stop.signal,
      purpose: "ogygia dashboard",
      onReport: (report) => {
        const fleet = statusJson(report) as FleetJson;
        if (fleet.error !== lastError) {
          if (fleet.error === null) log.info({}, "fleet backend reachable");
          else log.warn({ err: fleet.error }, "fleet backend unreachable; retrying");
          lastError = fleet.error;
        }
        const change = hub.update(fleet);
        if (fleet.error === null) pruneHistory(fleet);
        if (change === undefined) return;
        if (fleet.error === null) {
          const recorded = history.record(change.event.upserts, new Date());
          log.debug(
            { revision: change.revision, changed: change.event.upserts.length, recorded },
            "fleet changed",
          );
        }
      },
    });
  } finally {
    hub.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    history.close();
    log.info({}, "dashboard stopped");
  }
}

/** The CLI's entry: options as parsed by `ogygia dashboard`'s spec. */
export async function dashboardCommand(values: Record<string, unknown>): Promise<number> {
  const text = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === "string" ? value : undefined;
  };
  const level = text("log-level") ?? "info";
  if (!isLogLevel(level)) {
    throw new OgygiaError("ERR_OGYGIA_USAGE", `unknown log level '${level}'`, {
      hint: `Use one of ${LOG_LEVELS.join(", ")}.`,
      exitCode: 2,
    });
  }
  const log = createLogger({ name: "ogygia-dashboard", level });
  await runDashboard({
    listen: text("listen") ?? DEFAULT_LISTEN,
    root: text("root") ?? "/",
    configFile: text("config"),
    stateDir: text("state-dir"),
    tokenFile: text("token-file"),
    historyDays: parseHistoryDays(text("history-days") ?? "90"),
    env: process.env,
    log,
    onStart: (stop) => {
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    },
  });
  return 0;
}
