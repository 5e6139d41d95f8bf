/**
 * The `ogygia rollout` commands (the operator's) and `ogygia update` (the
 * host agent). Each loads `src/rollout` on first use.
 */

import { usageError, type CommandSpec } from "./args.js";
import { writeLines } from "./output.js";
import { CONFIG_OPTION, JSON_OPTION, printJson, text } from "./shared.js";

const ENVIRONMENT: [string, string][] = [
  ["OGYGIA_CONFIG", "configuration file to use instead of the default"],
];

function commandOptions(values: Record<string, unknown>) {
  return {
    root: text(values.root) ?? "/",
    configFile: text(values.config),
    env: process.env,
  };
}

async function printProgress(json: boolean, progress: unknown): Promise<void> {
  const rollout = await import("../rollout/index.js");
  if (json) return printJson(progress);
  writeLines(
    rollout
      .renderProgress(progress as Parameters<typeof rollout.renderProgress>[0])
      .map((line) => ({ stream: "stdout", text: line })),
  );
}

function integerOption(
  value: unknown,
  name: string,
  spec: CommandSpec,
  min: number,
): number | undefined {
  const raw = text(value);
  if (raw === undefined) return undefined;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < min) {
    throw usageError(`--${name} ${JSON.stringify(raw)} must be a whole number ≥ ${min}`, spec);
  }
  return Number(raw);
}

const START: CommandSpec = {
  path: ["rollout", "start"],
  summary: "start moving the fleet to a release, in waves, with a failure budget",
  description:
    'Write a rollout plan for RELEASE.json ({"revision": ..., "hosts": {host: system path},\n' +
    'optional "tags": {host: [tags]}}): hosts with the canary tag first, then the rest in\n' +
    "hashed order up to each cumulative percentage of --waves. Each host's `ogygia update`\n" +
    "agent applies it when its wave comes; the rollout halts once --budget hosts failed.",
  options: {
    waves: {
      type: "string",
      valueName: "p,p,...",
      description: "cumulative percentages of the non-canary hosts (default: 10,50,100)",
    },
    "canary-tag": {
      type: "string",
      valueName: "tag",
      description: "the tag of the first wave's hosts (default: canary)",
    },
    concurrency: {
      type: "string",
      valueName: "n|n%",
      description: "hosts updating at once, at most (default: 1)",
    },
    budget: {
      type: "string",
      valueName: "n",
      description: "failed hosts at which the rollout halts (default: 1)",
    },
    soak: {
      type: "string",
      valueName: "seconds",
      description: "how long a wave stays healthy before the next starts (default: 60)",
    },
    replace: { type: "boolean", description: "replace a rollout still running or paused" },
    config: CONFIG_OPTION,
    json: JSON_OPTION,
  },
  positionals: [{ name: "release", description: "the release file (JSON)" }],
  environment: ENVIRONMENT,
  examples: [
    "ogygia rollout start release.json",
    "ogygia rollout start release.json --waves 10,50,100 --concurrency 20% --budget 2 --soak 300",
  ],
  async run({ values, positionals }) {
    const file = positionals[0];
    if (file === undefined || file === "") throw usageError("a release file is required", START);
    const waves = (text(values.waves) ?? "10,50,100").split(",").map((p) => Number(p.trim()));
    if (waves.some((p) => !Number.isFinite(p))) {
      throw usageError(
        `--waves ${JSON.stringify(text(values.waves))} must be numbers like 10,50,100`,
        START,
      );
    }
    const rollout = await import("../rollout/index.js");
    const release = await rollout.readRelease(file);
    const progress = await rollout.withFleet(commandOptions(values), "ogygia rollout", (fleet) =>
      rollout.startRollout(fleet, release, {
        canaryTag: text(values["canary-tag"]) ?? "canary",
        percentages: waves,
        concurrency: text(values.concurrency) ?? "1",
        budget: integerOption(values.budget, "budget", START, 1) ?? 1,
        soakSeconds: integerOption(values.soak, "soak", START, 0) ?? 60,
        replace: values.replace === true,
        now: new Date(),
      }),
    );
    await printProgress(values.json === true, progress);
    return 0;
  },
};

const STATUS: CommandSpec = {
  path: ["rollout", "status"],
  summary: "show the rollout: its state, the failure budget, each wave and host",
  description:
    "Read the plan and every host's update state from the fleet store: running, paused,\n" +
    "aborted, halted (the failure budget is spent) or completed; per wave, the hosts and\n" +
    "their states (realising, activating, checking, confirming, confirmed, rolling-back,\n" +
    "rolled-back, failed, skipped; with a reboot: waiting-reboot-window, rebooting,\n" +
    "rebooting-back) with the error of those that failed.",
  options: { config: CONFIG_OPTION, json: JSON_OPTION },
  environment: ENVIRONMENT,
  examples: ["ogygia rollout status", "ogygia rollout status --json"],
  async run({ values }) {
    const rollout = await import("../rollout/index.js");
    const progress = await rollout.withFleet(commandOptions(values), "ogygia rollout", (fleet) =>
      rollout.rolloutStatus(fleet),
    );
    await printProgress(values.json === true, progress);
    return 0;
  },
};

function stateCommand(
  name: "pause" | "resume" | "abort",
  summary: string,
  description: string,
): CommandSpec {
  const spec: CommandSpec = {
    path: ["rollout", name],
    summary,
    description,
    options: {
      ...(name === "resume" && {
        release: {
          type: "string",
          valueName: "file",
          description: "a fixed release: its hosts' paths replace the plan's",
        },
        budget: { type: "string", valueName: "n", description: "a new failure budget" },
      }),
      config: CONFIG_OPTION,
      json: JSON_OPTION,
    },
    environment: ENVIRONMENT,
    examples: [
      name === "resume" ? "ogygia rollout resume --release fixed.json" : `ogygia rollout ${name}`,
    ],
    async run({ values }) {
      const rollout = await import("../rollout/index.js");
      const file = text(values.release);
      const release = file === undefined ? undefined : await rollout.readRelease(file);
      const budget = integerOption(values.budget, "budget", spec, 1);
      const state = name === "pause" ? "paused" : name === "abort" ? "aborted" : "running";
      const progress = await rollout.withFleet(commandOptions(values), "ogygia rollout", (fleet) =>
        rollout.setRolloutState(fleet, state, {
          ...(release && { release }),
          ...(budget !== undefined && { budget }),
        }),
      );
      await printProgress(values.json === true, progress);
      return 0;
    },
  };
  return spec;
}

const PAUSE = stateCommand(
  "pause",
  "stop starting updates (those under way finish)",
  "Set the plan to paused: no agent starts an update; those under way finish or roll back.",
);
const RESUME = stateCommand(
  "resume",
  "start updates again, optionally with a fixed release",
  "Set the plan to running. With --release, the file's hosts' paths replace the plan's: a\n" +
    "host that failed with its old path is pending again and no longer counts against the\n" +
    "budget.",
);
const ABORT = stateCommand(
  "abort",
  "end the rollout: no more updates start (hosts keep what they run)",
  "Set the plan to aborted. Hosts keep the system they run; a new rollout can be started.",
);

const UPDATE: CommandSpec = {
  path: ["update"],
  summary: "run this host's update agent: apply rollouts with health-gated rollback",
  description:
    "Wait for this host's turn in the fleet's rollout, then realise its system path (signed\n" +
    "by a trusted key, from [ogygia.update] substituters), activate it, check health within\n" +
    "the deadline, and confirm it (profile and boot entry) or roll back. An update left in\n" +
    "progress by a crash or reboot is finished or rolled back at start. A release that\n" +
    "changes the kernel, initrd or modules reboots the host when [ogygia.update] reboot\n" +
    "allows it (health is then checked after the boot). Logs go to stderr.",
  options: {
    once: {
      type: "boolean",
      description: "exit once this host finished its part of the rollout",
    },
    root: {
      type: "string",
      valueName: "dir",
      description: "act on the system under this root (a chroot store) instead of /",
    },
    config: CONFIG_OPTION,
    json: JSON_OPTION,
  },
  environment: ENVIRONMENT,
  examples: ["ogygia update", "ogygia update --once --json"],
  async run({ values }) {
    const rollout = await import("../rollout/index.js");
    const stop = new AbortController();
    const onSignal = (): void => {
      stop.abort();
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    const record = await rollout.runUpdateCommand({
      ...commandOptions(values),
      once: values.once === true,
      signal: stop.signal,
      log: (line) => {
        writeLines([{ stream: "stderr", text: `ogygia update: ${line}` }]);
      },
    });
    if (values.json === true) await printJson(record);
    return 0;
  },
};

export const ROLLOUT_COMMANDS: readonly CommandSpec[] = [
  START,
  STATUS,
  PAUSE,
  RESUME,
  ABORT,
  UPDATE,
];
