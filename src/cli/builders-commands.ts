/**
 * `ogygia builders`: Nix's machines file from the live fleet. Loads
 * `src/builders` on first use.
 */

import { detectHostname } from "../system/index.js";
import { usageError, type CommandSpec } from "./args.js";
import { writeLines } from "./output.js";
import { CONFIG_OPTION, ROOT_OPTION, printJson, text } from "./shared.js";

/** A positive number of seconds from an option, in milliseconds. */
function seconds(value: unknown, name: string): number {
  const raw = text(value) ?? "";
  const parsed = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(parsed) || parsed <= 0 || parsed > 86_400) {
    throw usageError(`--${name} must be a number of seconds above 0, got '${raw}'`, BUILDERS);
  }
  return Math.round(parsed * 1000);
}

const BUILDERS: CommandSpec = {
  path: ["builders"],
  summary: "write Nix's machines file from the fleet's online builders (once, or kept current)",
  description:
    "Print, in Nix's machines format, the builders the fleet offers: hosts whose publisher is\n" +
    "online and publishes a builder entry ([ogygia.builder]), not this host, best first.\n" +
    "--check probes each over SSH (`nix-store --version`, with $NIX_SSHOPTS as Nix uses it)\n" +
    "and says which fail and why; it exits 1 when one fails. --watch --output FILE keeps FILE\n" +
    "current (rewritten atomically on every fleet change), probes the builders, and drops one\n" +
    "that fails for base·3^(n-1) seconds (n failures, at most 4) until it answers again.\n" +
    "Malformed entries are skipped with a warning naming the host. The daemon logs JSON lines.",
  options: {
    json: { type: "boolean", description: "print the builders (and probe results) as JSON" },
    check: { type: "boolean", description: "probe each builder over SSH; exit 1 when one fails" },
    watch: {
      type: "boolean",
      description: "keep --output current until interrupted (a daemon)",
    },
    output: {
      type: "string",
      valueName: "file",
      description: "with --watch: the machines file to keep current (for builders = @FILE)",
    },
    "ssh-key": {
      type: "string",
      valueName: "file",
      description: "identity file Nix and the probes use ('-': ssh's own default)",
      default: "-",
    },
    "probe-interval": {
      type: "string",
      valueName: "secs",
      description: "with --watch: seconds between probes of a listed builder",
      default: "60",
    },
    "probe-timeout": {
      type: "string",
      valueName: "secs",
      description: "seconds a probe may take",
      default: "10",
    },
    "backoff-base": {
      type: "string",
      valueName: "secs",
      description: "with --watch: the backoff after a first failed probe (Hydra's 60)",
      default: "60",
    },
    "metrics-listen": {
      type: "string",
      valueName: "addr:port",
      description: "with --watch: serve Prometheus metrics at http://ADDR:PORT/metrics",
    },
    "log-level": {
      type: "string",
      valueName: "level",
      description: "daemon log level: fatal, error, warn, info, debug or trace",
      default: "info",
    },
    root: { ...ROOT_OPTION, description: "resolve the default config under DIR" },
    config: CONFIG_OPTION,
  },
  environment: [
    ["OGYGIA_CONFIG", "configuration file to use instead of the default"],
    ["OGYGIA_HOSTNAME", "this host's name (never listed as a builder), instead of detecting it"],
    ["NIX_SSHOPTS", "extra ssh options, as Nix adds them to every ssh it runs"],
  ],
  examples: [
    "ogygia builders",
    "ogygia builders --check",
    "ogygia builders --json",
    "ogygia builders --watch --output /run/ogygia/nix-machines --ssh-key /root/.ssh/nix-builder",
  ],
  async run({ values }) {
    const watch = values.watch === true;
    const output = text(values.output);
    if (watch && output === undefined) throw usageError("--watch needs --output FILE", BUILDERS);
    if (!watch && output !== undefined) throw usageError("--output needs --watch", BUILDERS);
    if (watch && (values.json === true || values.check === true)) {
      throw usageError("--watch writes --output; --json and --check are for one listing", BUILDERS);
    }
    const base = {
      hostname: detectHostname({ env: process.env }),
      root: text(values.root) ?? "/",
      configFile: text(values.config),
      env: process.env,
      sshKey: text(values["ssh-key"]) ?? "-",
      probeTimeoutMs: seconds(values["probe-timeout"], "probe-timeout"),
    };
    const builders = await import("../builders/index.js");
    if (!watch) {
      const list = await builders.listBuilders({ ...base, check: values.check === true });
      if (values.json === true) {
        await printJson(builders.buildersJson(list));
      } else {
        writeLines(builders.renderBuilders(list, values.check === true));
      }
      return list.failed.length > 0 ? 1 : 0;
    }
    const level = text(values["log-level"]) ?? "info";
    const listen = text(values["metrics-listen"]);
    const [log, { parseHostPort }] = await Promise.all([
      import("../log/index.js"),
      import("../config/index.js"),
    ]);
    if (!log.isLogLevel(level)) {
      throw usageError(
        `unknown log level '${level}' (use one of ${log.LOG_LEVELS.join(", ")})`,
        BUILDERS,
      );
    }
    const metricsListen = listen === undefined ? undefined : parseHostPort(listen);
    if (listen !== undefined && metricsListen === undefined) {
      throw usageError(`--metrics-listen must be host:port, got '${listen}'`, BUILDERS);
    }
    await builders.runBuildersDaemon({
      ...base,
      output: output ?? "",
      probeIntervalMs: seconds(values["probe-interval"], "probe-interval"),
      backoffBaseMs: seconds(values["backoff-base"], "backoff-base"),
      metricsListen,
      log: log.createLogger({
        name: "ogygia-builders",
        level,
        base: { host: (await base.hostname).hostname },
      }),
      onStart: (stop) => {
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      },
    });
    return 0;
  },
};

export const BUILDERS_COMMANDS: readonly CommandSpec[] = [BUILDERS];
