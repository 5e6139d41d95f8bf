/**
 * `ogygia-irisd`: the binary-cache daemon's entry point. Parses the
 * command line, loads the configuration, starts the daemon, tells systemd
 * it is ready, and stops gracefully on SIGTERM or SIGINT.
 *
 * Exit status: 0 after a clean stop, 1 when it cannot start (address taken,
 * store database missing, unreadable key), 2 for a bad command line, 78
 * for an invalid configuration, 70 for a bug.
 */

import cluster from "node:cluster";
import { parseArgs } from "node:util";

import {
  EXIT_BUG,
  OgygiaError,
  errorMessage,
  errorReport,
  escapeForTerminal,
  packageVersion,
} from "../core/index.js";
import { startClusteredDaemon } from "./cluster-primary.js";
import { runWorker } from "./cluster-worker.js";
import { irisdConfigSource, loadIrisdConfig, CONFIG_ENV, DEFAULT_CONFIG_PATH } from "./config.js";
import { startDaemon } from "./daemon.js";
import { createLogger, errorFields, type Logger, type LogThreshold } from "../log/index.js";
import { notifySystemd } from "./notify.js";
import { lowerHelperThreadsLogged } from "./thread-priority.js";
import { loadSigningKeys } from "./store/index.js";

const EXIT_USAGE = 2;

const HELP = `Usage: ogygia-irisd [--config FILE] [--check-config] [--no-key-files]

Serves the local Nix store as a binary cache over HTTP: /nix-cache-info,
/<hash>.narinfo, /nar/<hash>-<narhash>.nar and /metrics. Only signed,
content-addressed or (with [signing] keys) signable paths are served.

Options:
  -c, --config FILE   configuration file (default: $${CONFIG_ENV}, else
                      ${DEFAULT_CONFIG_PATH})
      --check-config  validate the configuration and the signing keys, then exit
      --no-key-files  with --check-config: validate the file but do not read the
                      signing key files it names (for build-time checks, where
                      secrets such as /run/credentials/... do not exist yet)
  -h, --help          show this help
  -V, --version       show the version

Logs are JSON lines on stderr. SIGTERM or SIGINT stops it gracefully.
See docs/irisd.md for the configuration reference.`;

function printError(err: unknown): number {
  const report = errorReport(err, { prefix: "ogygia-irisd: " });
  process.stderr.write(report.lines.map((line) => `${line}\n`).join(""));
  return report.exitCode;
}

function irisdLogger(level: LogThreshold): Logger {
  return createLogger({ name: "ogygia-irisd", level });
}

function logFatal(log: Logger, err: unknown): number {
  if (err instanceof OgygiaError) {
    log.fatal(errorFields(err), `cannot start: ${err.message}`);
    return err.exitCode;
  }
  log.fatal(
    { ...errorFields(err), stack: err instanceof Error ? err.stack : undefined },
    "internal error (a bug; please report it)",
  );
  return EXIT_BUG;
}

/**
 * Validates the configuration: schema and cross-field rules, then (unless
 * `readKeyFiles` is false) the signing keys it names.
 */
async function checkConfig(
  configFlag: string | undefined,
  { readKeyFiles }: { readKeyFiles: boolean },
): Promise<number> {
  const source = irisdConfigSource(configFlag, process.env);
  const config = await loadIrisdConfig(source);
  if (readKeyFiles) await loadSigningKeys(config.signing.secretKeyFiles);
  const shown = escapeForTerminal(config.path ?? `${DEFAULT_CONFIG_PATH} (absent: all defaults)`);
  const note = readKeyFiles ? "" : " (key files not read)";
  process.stdout.write(`ogygia-irisd: configuration ${shown} is valid${note}\n`);
  return 0;
}

/**
 * SIGTERM and SIGINT, heard from the moment this is called: `first` resolves
 * with the first of them, `second` with the next.
 */
function stopSignals(): { first: Promise<NodeJS.Signals>; second: Promise<NodeJS.Signals> } {
  const heard: ((signal: NodeJS.Signals) => void)[] = [];
  const first = new Promise<NodeJS.Signals>((resolve) => heard.push(resolve));
  const second = new Promise<NodeJS.Signals>((resolve) => heard.push(resolve));
  const hear = (signal: NodeJS.Signals): void => {
    heard.shift()?.(signal);
  };
  process.on("SIGTERM", hear);
  process.on("SIGINT", hear);
  return { first, second };
}

/** Runs until SIGTERM/SIGINT; resolves with the exit status. */
async function serve(configFlag: string | undefined): Promise<number> {
  // Heard before anything starts: a stop asked for while the daemon starts
  // (a manager giving up on it, Ctrl-C) is done once it has started, its
  // workers and private socket folder removed, instead of the default action
  // killing it half-started. A second signal ends it at once.
  const signals = stopSignals();
  let starting = true;
  void signals.second.then((signal) => {
    if (!starting) return;
    process.stderr.write(`ogygia-irisd: ${signal} again while starting: exiting now\n`);
    process.exit(1);
  });
  let log = irisdLogger("info");
  let config;
  try {
    config = await loadIrisdConfig(irisdConfigSource(configFlag, process.env));
  } catch (err) {
    return logFatal(log, err);
  }
  log = irisdLogger(config.server.logLevel);
  if (config.path === undefined) {
    log.info({ config: DEFAULT_CONFIG_PATH }, "no configuration file: using the defaults");
  }
  let daemon;
  try {
    daemon =
      config.server.workers > 1
        ? await startClusteredDaemon(config, log)
        : await startDaemon(config, log);
  } catch (err) {
    return logFatal(log, err);
  }
  await lowerHelperThreadsLogged(config.server.helperThreadNice, log);
  starting = false;

  // READY=1 only when no stop came during the start; either way the handlers
  // were in place first: a manager may stop the daemon as soon as it reads it.
  const stopNow = await Promise.race([signals.first, Promise.resolve(undefined)]);
  if (stopNow === undefined) await notifySystemd("READY=1", { log });
  const signal = stopNow ?? (await signals.first);
  log.info({ signal }, "stopping: finishing requests in flight");
  void notifySystemd("STOPPING=1", { log });
  const stopped = daemon.stop().then(
    () => {
      log.info({}, "stopped");
      return 0;
    },
    (err: unknown) => {
      log.error(errorFields(err), `error while stopping: ${errorMessage(err)}`);
      return 1;
    },
  );
  return Promise.race([
    stopped,
    signals.second.then((again) => {
      log.warn({ signal: again }, "second signal: exiting now");
      return 1;
    }),
  ]);
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        "check-config": { type: "boolean" },
        "no-key-files": { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`ogygia-irisd: ${escapeForTerminal(errorMessage(err))}\n\n${HELP}\n`);
    return EXIT_USAGE;
  }
  if (values.help === true) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  if (values.version === true) {
    process.stdout.write(`${packageVersion(import.meta.url)}\n`);
    return 0;
  }
  const readKeyFiles = values["no-key-files"] !== true;
  if (!readKeyFiles && values["check-config"] !== true) {
    process.stderr.write(`ogygia-irisd: --no-key-files needs --check-config\n\n${HELP}\n`);
    return EXIT_USAGE;
  }
  if (values["check-config"] === true) {
    try {
      return await checkConfig(values.config, { readKeyFiles });
    } catch (err) {
      return printError(err);
    }
  }
  return serve(values.config);
}

process.on("uncaughtException", (err) => {
  process.stderr.write(
    `${JSON.stringify({ level: 60, time: new Date().toISOString(), pid: process.pid, name: "ogygia-irisd", msg: "uncaught exception (a bug)", err: err.message, stack: err.stack })}\n`,
  );
  process.exit(EXIT_BUG);
});

// A worker of `[server] workers` runs the same program: it takes its configuration from the primary.
process.exitCode = cluster.isWorker ? await runWorker() : await main(process.argv.slice(2));
// Everything is closed after a clean stop; exit explicitly so that nothing
// (a keep-alive timer, a stuck child) can keep a stopped daemon around.
process.exit();
