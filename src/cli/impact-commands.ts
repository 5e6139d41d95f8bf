/**
 * `ogygia diff`, `ogygia who-runs` and `ogygia impact`. Each loads
 * `src/impact` on first use.
 */

import { usageError, type CommandSpec } from "./args.js";
import { writeLines } from "./output.js";
import { CONFIG_OPTION, JSON_OPTION, ROOT_OPTION, printJson, text } from "./shared.js";

const COMMON_OPTIONS = {
  json: JSON_OPTION,
  irisd: {
    type: "string",
    valueName: "url",
    description:
      "the local ogygia-irisd (default: $OGYGIA_IRISD_URL, else [ogygia.impact] irisd_url, else http://127.0.0.1:35742)",
  },
  store: {
    type: "string",
    valueName: "dir",
    description: "physical root of the local store, read first when it has a path",
    default: "/",
  },
  root: { ...ROOT_OPTION, description: "resolve the default config under DIR" },
  config: CONFIG_OPTION,
} as const;

const ENVIRONMENT = [
  ["OGYGIA_CONFIG", "configuration file to use instead of the default"],
  ["OGYGIA_IRISD_URL", "the ogygia-irisd to read through"],
] as const;

type Values = Record<string, unknown>;

async function open(values: Values) {
  const impact = await import("../impact/index.js");
  const sources = await impact.openSources({
    root: text(values.root) ?? "/",
    configFile: text(values.config),
    env: process.env,
    irisdUrl: text(values.irisd),
    storeRoot: text(values.store) ?? "/",
  });
  return { impact, sources };
}

const DIFF: CommandSpec = {
  path: ["diff"],
  summary: "compare two systems' closures as nvd does: version changes, added, removed, size",
  description:
    "Compare the closures of A and B: packages whose version changed (name, old -> new),\n" +
    "packages added and removed, and the change in closure size (sum of NAR sizes).\n" +
    "A and B are store paths, links such as ./result, or hosts of the fleet: web01 (its\n" +
    "current system), web01:booted, web01:nextboot. Paths this host lacks are read through\n" +
    "the local ogygia-irisd, which asks its peers.",
  options: COMMON_OPTIONS,
  positionals: [
    { name: "a", description: "the old system: a store path, a link, or HOST[:state]" },
    { name: "b", description: "the new system" },
  ],
  environment: ENVIRONMENT,
  examples: [
    "ogygia diff /run/booted-system /run/current-system",
    "ogygia diff web01 ./result",
    "ogygia diff web01:booted web01 --json",
  ],
  async run({ values, positionals }) {
    const [a, b] = positionals;
    if (a === undefined || b === undefined) throw usageError("give two systems to compare", DIFF);
    const { impact, sources } = await open(values);
    try {
      const result = await impact.runDiff(sources, a, b);
      if (values.json === true) await printJson(result);
      else writeLines(impact.renderDiff(result));
    } finally {
      sources.close();
    }
    return 0;
  },
};

const WHO_RUNS: CommandSpec = {
  path: ["who-runs"],
  summary: "list the hosts whose running system contains a package or store path",
  description:
    "List the hosts whose current system's closure (with --all-states also the booted and\n" +
    "next-boot systems') contains PATTERN, with the matching paths. PATTERN is a store path,\n" +
    "a package name (openssl), a name and version (openssl-3.0.7), or a version range\n" +
    "(openssl<3.0.8; also <=, >, >=, =, !=), versions compared as Nix compares them.\n" +
    'Exits 0 ("no host runs it" when none), 1 when some host\'s system could not be read.',
  options: {
    ...COMMON_OPTIONS,
    "all-states": { type: "boolean", description: "look at booted and next-boot systems too" },
  },
  positionals: [
    { name: "pattern", description: "a store path, name, name-version or name<version" },
  ],
  environment: ENVIRONMENT,
  examples: [
    "ogygia who-runs openssl",
    "ogygia who-runs 'openssl<3.0.8' --all-states",
    "ogygia who-runs /nix/store/...-openssl-3.0.7 --json",
  ],
  async run({ values, positionals }) {
    const pattern = positionals[0];
    if (pattern === undefined || pattern === "") throw usageError("give a pattern", WHO_RUNS);
    const { impact, sources } = await open(values);
    try {
      const result = await impact.runWhoRuns(sources, pattern, {
        allStates: values["all-states"] === true,
      });
      if (values.json === true) await printJson(result);
      else writeLines(impact.renderWhoRuns(result));
      return result.unreadable.length > 0 ? 1 : 0;
    } finally {
      sources.close();
    }
  },
};

const IMPACT: CommandSpec = {
  path: ["impact"],
  summary: "show what a release would change on each host: packages, units, reboots, size",
  description:
    'For each host of a release (a JSON file {"hosts": {"web01": "/nix/store/..."}}, as\n' +
    "the rollout command takes), or every host with --all-to PATH, compare the system it\n" +
    "runs now with the new one: unchanged, packages changed, systemd units that would\n" +
    "restart, start or stop (unit files under etc/systemd/system), reboot needed (kernel,\n" +
    "initrd or kernel modules differ), closure size change. Hosts with the same impact are\n" +
    "grouped: a summary table first, then each group. Hosts that cannot be read are shown.",
  options: {
    ...COMMON_OPTIONS,
    "all-to": {
      type: "string",
      valueName: "path",
      description: "compare every host with this one system (a store path or link)",
    },
  },
  positionals: [{ name: "release", description: "the release's JSON file", optional: true }],
  environment: ENVIRONMENT,
  examples: ["ogygia impact release.json", "ogygia impact --all-to ./result --json"],
  async run({ values, positionals }) {
    const release = positionals[0];
    const allTo = text(values["all-to"]);
    if ((release === undefined) === (allTo === undefined)) {
      throw usageError("give either a release file or --all-to PATH", IMPACT);
    }
    const { impact, sources } = await open(values);
    try {
      const result = await impact.runImpact(
        sources,
        allTo !== undefined ? { allTo } : { releaseFile: release ?? "" },
      );
      if (values.json === true) await printJson(result);
      else writeLines(await impact.renderImpact(result));
      return result.summary.unreadable > 0 ? 1 : 0;
    } finally {
      sources.close();
    }
  },
};

export const IMPACT_COMMANDS: readonly CommandSpec[] = [DIFF, WHO_RUNS, IMPACT];
