/**
 * The table of `ogygia` commands. Each entry is metadata plus a `run` that
 * imports the command's module on first use, so that loading this table
 * costs nothing more. A `status` start does not load this table at all: its
 * entry is `status-command.ts` (src/cli/main.ts).
 */

import { backendPrecedence, describeBackends } from "../fleet/index.js";
import { DEFAULT_IRISD_URL } from "../iris/index.js";
import { DEFAULT_CONFIG_PATH, detectHostname } from "../system/index.js";
import { usageError, type CommandSpec } from "./args.js";
import { BUILDERS_COMMANDS } from "./builders-commands.js";
import { IMPACT_COMMANDS } from "./impact-commands.js";
import { NEBULA_COMMANDS } from "./nebula-commands.js";
import { FLEET_COMMANDS } from "./fleet-commands.js";
import { ROLLOUT_COMMANDS } from "./rollout-commands.js";
import { STATUS_COMMAND } from "./status-command.js";
import { outputStream, writeLine, writeLines } from "./output.js";
import { CONFIG_ENVIRONMENT, CONFIG_OPTION, ROOT_OPTION, text } from "./shared.js";

/** "etcd or ZooKeeper": every registered backend, for the help. */
const BACKEND_NAMES = describeBackends("label", "or");

const PUBLISH: CommandSpec = {
  path: ["publish"],
  summary: `keep ${BACKEND_NAMES} current with this host's states, liveness and reboot-needed flag`,
  description:
    "Publish this host's system states (current, booted, next boot), whether it needs a\n" +
    `reboot, and when it last confirmed them, under <namespace>/<host>/ in ${BACKEND_NAMES}.\n` +
    "The daemon republishes within a second of a state link changing, keeps an `alive` key\n" +
    `tied to an ${describeBackends("liveness", "or")}, and revokes it on SIGTERM or SIGINT.\n` +
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
      root: text(values.root) ?? "/",
      configFile: text(values.config),
      env: process.env,
    };
    if (values.once === true) {
      const result = await publish.publishOnce(options);
      if (values.json === true) {
        const { jsonOutput } = await import("../command/index.js");
        writeLines([jsonOutput(publish.publishJson(result))]);
      } else {
        writeLines(await publish.renderPublishText(result));
      }
      return 0;
    }
    const level = text(values["log-level"]) ?? "info";
    const log = await import("../log/index.js");
    if (!log.isLogLevel(level)) {
      throw usageError(
        `unknown log level '${level}' (use one of ${log.LOG_LEVELS.join(", ")})`,
        PUBLISH,
      );
    }
    await publish.runDaemon({
      ...options,
      log: log.createLogger({
        name: "ogygia-publish",
        level,
        base: { host: (await hostname).hostname },
      }),
      onStart: (stop) => {
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      },
    });
    return 0;
  },
};

const IRISD_OPTION = {
  type: "string",
  valueName: "url",
  description: `the ogygia-irisd to ask (default: $OGYGIA_IRISD_URL, else ${DEFAULT_IRISD_URL})`,
} as const;

const IRIS_ENVIRONMENT = [
  ["OGYGIA_IRISD_URL", "the ogygia-irisd to ask, instead of the default"],
] as const;

async function readStdinPaths(): Promise<string[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString("utf8")
    .split(/\s+/)
    .filter((word) => word !== "");
}

const IRIS_PROVIDERS: CommandSpec = {
  path: ["iris", "providers"],
  summary: "show which peers can serve a store path, as the local ogygia-irisd sees it",
  description:
    "Ask the local ogygia-irisd which peers have a store path. It checks its peers' bloom\n" +
    "filters and confirms each match by fetching and verifying the peer's narinfo.",
  options: {
    irisd: IRISD_OPTION,
    json: { type: "boolean", description: "print the daemon's answer as JSON" },
  },
  positionals: [
    {
      name: "hash-or-path",
      description: "a hash part, a store path (or a path inside one), or a link such as ./result",
    },
  ],
  environment: IRIS_ENVIRONMENT,
  examples: [
    "ogygia iris providers 0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a",
    "ogygia iris providers /nix/store/0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a-hello-2.12",
    "ogygia iris providers ./result --json",
  ],
  async run({ values, positionals }) {
    const irisctl = await import("../irisctl/index.js");
    const base = irisctl.irisdBaseUrl(text(values.irisd), process.env);
    const answer = await irisctl.queryProviders(base, positionals[0] ?? "");
    if (values.json === true) {
      writeLine("stdout", JSON.stringify(answer, null, 2));
    } else {
      for (const line of irisctl.renderProviders(answer)) writeLine("stdout", line);
    }
    return 0;
  },
};

const IRIS_PUSH: CommandSpec = {
  path: ["iris", "push"],
  summary: "sign store paths' closures and have the local ogygia-irisd advertise them at once",
  description:
    "For the closure of the given store paths, sign every path that lacks a valid signature\n" +
    "by --sign's key (with `nix store sign`), then ask the local ogygia-irisd to index them,\n" +
    "so peers find them at once. Paths come from the arguments, else from standard input\n" +
    "(whitespace-separated). Exits 1 if any path failed; each failure is named on stderr.",
  options: {
    sign: {
      type: "string",
      valueName: "keyfile",
      description: "Nix secret key file to sign with (from `nix key generate-secret`)",
    },
    irisd: IRISD_OPTION,
    store: {
      type: "string",
      valueName: "dir",
      description: "physical root of the store: files under DIR/nix/store (a chroot store)",
      default: "/",
    },
    json: { type: "boolean", description: "print the result as JSON" },
  },
  positionals: [
    {
      name: "path",
      description: "store paths, or links into the store such as ./result",
      variadic: true,
    },
  ],
  environment: IRIS_ENVIRONMENT,
  examples: [
    "ogygia iris push ./result",
    "ogygia iris push --sign /var/lib/ogygia/cache-key.secret /nix/store/...-mypackage",
    "nix-store -qR ./result | ogygia iris push --sign key.secret",
  ],
  async run({ values, positionals }) {
    let inputs = positionals;
    if (inputs.length === 0) {
      if (process.stdin.isTTY) {
        throw usageError("give store paths as arguments or on standard input", IRIS_PUSH);
      }
      inputs = await readStdinPaths();
      if (inputs.length === 0) throw usageError("no store paths on standard input", IRIS_PUSH);
    }
    const irisctl = await import("../irisctl/index.js");
    const base = irisctl.irisdBaseUrl(text(values.irisd), process.env);
    const stderr = outputStream("stderr");
    const live = values.json !== true && stderr.isTTY;
    const result = await irisctl.pushPaths({
      inputs,
      root: text(values.store) ?? "/",
      signKeyFile: text(values.sign),
      irisd: base,
      ...(live ? { progress: (message: string) => stderr.write(`\r\x1b[K${message}`) } : {}),
    });
    if (live) stderr.write("\r\x1b[K");
    if (values.json === true) {
      writeLine("stdout", JSON.stringify(result, null, 2));
    } else {
      writeLines(irisctl.renderPushResult(result));
    }
    return result.failed.length > 0 ? 1 : 0;
  },
};

const CONFIG_CHECK: CommandSpec = {
  path: ["config", "check"],
  summary: "validate an ogygia configuration file and say which fleet backend it selects",
  description:
    "Read a configuration file with the same strict parser every command uses, and report\n" +
    `the fleet backend it selects (${backendPrecedence()}). The file\n` +
    "must exist: unlike the other commands, a missing file is an error, not local-only mode.\n" +
    "Nothing is contacted. Exits 1 for an invalid or missing file, naming the file, the line\n" +
    "and the dotted key; the NixOS module runs it at build time on the rendered file.",
  options: {
    json: {
      type: "boolean",
      description: "print the result as JSON (file, valid, backend, namespace, endpoints)",
    },
  },
  positionals: [
    {
      name: "file",
      description: `the file to check (default: $OGYGIA_CONFIG, else ${DEFAULT_CONFIG_PATH})`,
      optional: true,
    },
  ],
  environment: [["OGYGIA_CONFIG", "the file to check when none is given"]],
  examples: [
    "ogygia config check",
    "ogygia config check /etc/ogygia/config.toml",
    "ogygia config check --json ./config.toml",
  ],
  async run({ values, positionals }) {
    const [{ checkConfigFile, renderConfigCheck }, { jsonOutput }] = await Promise.all([
      import("./config-check.js"),
      import("../command/index.js"),
    ]);
    const result = await checkConfigFile({ file: positionals[0], env: process.env });
    writeLines([
      values.json === true
        ? jsonOutput(result)
        : { stream: "stdout", text: renderConfigCheck(result) },
    ]);
    return 0;
  },
};

const DOCTOR: CommandSpec = {
  path: ["doctor"],
  summary: "check each moving part (config, backend, publisher, irisd, Nix) and say how to fix it",
  description:
    "Check, each with ok / warn / fail, what was found and the fix: the configuration, each\n" +
    `${BACKEND_NAMES} endpoint (reachable, latency, the namespace readable), this host's name\n` +
    "as the fleet knows it, the local build-revision files, this host's publisher (alive,\n" +
    "updated_at, clock skew), ogygia-irisd, whether Nix uses and trusts it, and its peers.\n" +
    "Every check has a deadline. Exits 1 when a check fails.",
  options: {
    json: { type: "boolean", description: "print the checks as JSON" },
    root: ROOT_OPTION,
    config: CONFIG_OPTION,
    irisd: IRISD_OPTION,
  },
  environment: [...CONFIG_ENVIRONMENT, ...IRIS_ENVIRONMENT],
  examples: ["ogygia doctor", "ogygia doctor --json"],
  async run({ values }) {
    const hostname = detectHostname({ env: process.env });
    const [{ runDoctor, renderDoctorText, doctorJson }, { irisdBaseUrl }, { jsonOutput }] =
      await Promise.all([
        import("../doctor/index.js"),
        import("../irisctl/index.js"),
        import("../command/index.js"),
      ]);
    const report = await runDoctor({
      hostname,
      root: text(values.root) ?? "/",
      configFile: text(values.config),
      env: process.env,
      irisdUrl: irisdBaseUrl(text(values.irisd), process.env),
    });
    writeLines(values.json === true ? [jsonOutput(doctorJson(report))] : renderDoctorText(report));
    return report.ok ? 0 : 1;
  },
};

const COMPLETION: CommandSpec = {
  path: ["completion"],
  summary: "print a shell completion script for bash, zsh or fish",
  description:
    "Print a script that completes ogygia's commands, options, and file and directory\n" +
    "arguments in bash, zsh or fish. Install it once (see the examples), then start a new shell.",
  options: {},
  positionals: [
    { name: "shell", description: "bash, zsh or fish", choices: ["bash", "zsh", "fish"] },
  ],
  examples: [
    "ogygia completion bash > ~/.local/share/bash-completion/completions/ogygia",
    "ogygia completion zsh > ~/.zfunc/_ogygia    # with fpath=(~/.zfunc $fpath) in ~/.zshrc",
    "ogygia completion fish > ~/.config/fish/completions/ogygia.fish",
    "source <(ogygia completion bash)            # this shell only",
  ],
  async run({ positionals }) {
    const { SHELLS, completionScript } = await import("./completion.js");
    const shell = SHELLS.find((s) => s === positionals[0]) ?? "bash";
    writeLine("stdout", completionScript(shell, COMMANDS).trimEnd());
    return 0;
  },
};

export const COMMANDS: readonly CommandSpec[] = [
  STATUS_COMMAND,
  PUBLISH,
  IRIS_PUSH,
  IRIS_PROVIDERS,
  CONFIG_CHECK,
  DOCTOR,
  ...NEBULA_COMMANDS,
  ...BUILDERS_COMMANDS,
  ...FLEET_COMMANDS,
  ...IMPACT_COMMANDS,
  ...ROLLOUT_COMMANDS,
  {
    path: ["dashboard"],
    summary: "serve a live web view of the fleet (table, summary, host history, SSE, metrics)",
    description:
      `Serve a web page showing the fleet read from ${BACKEND_NAMES}, updated live as hosts\n` +
      "change, with each host's history (kept in SQLite under --state-dir), a JSON API\n" +
      "(/api/fleet, /api/events, /api/hosts/<host>/history) and /metrics. Read-only.\n" +
      "A listen address other than loopback needs --token-file. Logs are JSON lines on stderr.",
    options: {
      listen: {
        type: "string",
        valueName: "addr:port",
        description: "where to listen",
        default: "127.0.0.1:35743",
      },
      root: ROOT_OPTION,
      config: CONFIG_OPTION,
      "state-dir": {
        type: "string",
        valueName: "dir",
        description:
          "where the history database lives (default: $XDG_STATE_HOME/ogygia, as root /var/lib/ogygia)",
      },
      "history-days": {
        type: "string",
        valueName: "days",
        description:
          "forget state changes older than this (each host keeps its newest; 0 keeps all)",
        default: "90",
      },
      "token-file": {
        type: "string",
        valueName: "file",
        description: "require the bearer token in FILE",
      },
      "log-level": {
        type: "string",
        valueName: "level",
        description: "log level",
        default: "info",
      },
    },
    environment: CONFIG_ENVIRONMENT,
    examples: [
      "ogygia dashboard",
      "ogygia dashboard --listen 0.0.0.0:35743 --token-file /run/keys/dashboard",
    ],
    run: async ({ values }) => (await import("../dashboard/index.js")).dashboardCommand(values),
  },
  COMPLETION,
];
