/**
 * The table of `ogygia` commands. Each entry is metadata plus a `run` that
 * imports the command's module on first use, so that loading this table
 * costs nothing and `ogygia status` never loads another command's code.
 */

import { detectHostname } from "../system/index.js";
import { usageError, type CommandSpec } from "./args.js";
import { writeLine, writeLines } from "./output.js";

const ROOT_OPTION = {
  type: "string",
  valueName: "dir",
  description: "resolve system paths (and the default config) under DIR",
  default: "/",
} as const;

const CONFIG_OPTION = {
  type: "string",
  valueName: "file",
  description:
    "configuration file (default: $OGYGIA_CONFIG, else <root>/run/current-system/sw/share/ogygia/config.toml)",
} as const;

const CONFIG_ENVIRONMENT = [
  ["OGYGIA_CONFIG", "configuration file to use instead of the default"],
  ["OGYGIA_HOSTNAME", "this host's name, instead of detecting it"],
] as const;

const PUBLISH: CommandSpec = {
  path: ["publish"],
  summary:
    "keep etcd or ZooKeeper current with this host's states, liveness and reboot-needed flag",
  description:
    "Publish this host's system states (current, booted, next boot), whether it needs a\n" +
    "reboot, and when it last confirmed them, under <namespace>/<host>/ in etcd or ZooKeeper.\n" +
    "The daemon republishes within a second of a state link changing, keeps an `alive` key\n" +
    "tied to an etcd lease or ZooKeeper session, and revokes it on SIGTERM or SIGINT.\n" +
    "Logs are JSON lines on stderr. The host key is the detected host name.",
  options: {
    once: {
      type: "boolean",
      description: "publish once and exit (leaves `alive` alone: only the daemon keeps it)",
    },
    json: {
      type: "boolean",
      description: "with --once: print what was published as JSON",
    },
    root: ROOT_OPTION,
    config: CONFIG_OPTION,
    "log-level": {
      type: "string",
      valueName: "level",
      description: "daemon log level: fatal, error, warn, info, debug or trace",
      default: "info",
    },
  },
  environment: CONFIG_ENVIRONMENT,
  examples: ["ogygia publish", "ogygia publish --once", "ogygia publish --once --json --root /mnt"],
  async run({ values }) {
    if (values.json === true && values.once !== true) {
      throw usageError("--json needs --once (the daemon logs JSON lines to stderr)", PUBLISH);
    }
    const hostname = detectHostname({ env: process.env });
    const publish = await import("../publish/index.js");
    const options = {
      hostname,
      root: typeof values.root === "string" ? values.root : "/",
      configFile: typeof values.config === "string" ? values.config : undefined,
      env: process.env,
    };
    if (values.once === true) {
      const result = await publish.publishOnce(options);
      if (values.json === true) {
        writeLine("stdout", JSON.stringify(publish.publishJson(result), null, 2));
      } else {
        writeLines(await publish.renderPublishText(result));
      }
      return 0;
    }
    const level = typeof values["log-level"] === "string" ? values["log-level"] : "info";
    if (!publish.isLogLevel(level)) {
      throw usageError(
        `unknown log level '${level}' (use one of ${publish.LOG_LEVELS.join(", ")})`,
        PUBLISH,
      );
    }
    await publish.runDaemon({
      ...options,
      log: publish.createLogger(level, (await hostname).hostname),
      onStart: (stop) => {
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      },
    });
    return 0;
  },
};

export const COMMANDS: readonly CommandSpec[] = [
  {
    path: ["status"],
    summary: "show which revision built each system state, here or across the fleet",
    description:
      "Show the git revision that built each system state (current, booted, next boot),\n" +
      "for this host alone or for the whole fleet read from etcd or ZooKeeper.",
    options: {
      json: {
        type: "boolean",
        description: "print the report as JSON (full revisions, null where unknown)",
      },
      watch: {
        type: "boolean",
        short: "w",
        description:
          "redraw whenever the fleet changes, until interrupted (with --json: one document per line)",
      },
      root: ROOT_OPTION,
      config: CONFIG_OPTION,
    },
    environment: CONFIG_ENVIRONMENT,
    examples: [
      "ogygia status",
      "ogygia status --json",
      "ogygia status --watch",
      "ogygia status --root /mnt",
    ],
    async run({ values }) {
      // `hostname -f` takes as long as loading the status module: overlap them.
      const hostname = detectHostname({ env: process.env });
      const status = await import("../status/index.js");
      const options = {
        hostname,
        root: typeof values.root === "string" ? values.root : "/",
        configFile: typeof values.config === "string" ? values.config : undefined,
        env: process.env,
      };
      if (values.watch === true) {
        const stop = new AbortController();
        const onSignal = (): void => {
          stop.abort();
        };
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        const printer = status.watchPrinter({
          json: values.json === true,
          tty: process.stdout.isTTY,
        });
        await status.watchStatus({
          ...options,
          signal: stop.signal,
          onReport: async (report) => {
            writeLines(await printer.print(report));
            // Wait until the frame is out: a reader that stalls holds up the
            // next frame instead of letting output pile up in memory.
            await new Promise<void>((resolve) =>
              process.stdout.write("", () => {
                resolve();
              }),
            );
          },
        });
        return 0;
      }
      const report = await status.collectStatus(options);
      if (values.json === true) {
        writeLine("stdout", JSON.stringify(status.statusJson(report), null, 2));
        return 0;
      }
      writeLines(await status.renderStatusText(report));
      return 0;
    },
  },
  PUBLISH,
];
