/**
 * The table of `ogygia` commands. Each entry is metadata plus a `run` that
 * imports the command's module on first use, so that loading this table
 * costs nothing and `ogygia status` never loads another command's code.
 */

import { detectHostname } from "../system/index.js";
import type { CommandSpec } from "./args.js";
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
      root: ROOT_OPTION,
      config: CONFIG_OPTION,
    },
    environment: CONFIG_ENVIRONMENT,
    examples: ["ogygia status", "ogygia status --json", "ogygia status --root /mnt"],
    async run({ values }) {
      // `hostname -f` takes as long as loading the status module: overlap them.
      const hostname = detectHostname({ env: process.env });
      const status = await import("../status/index.js");
      const report = await status.collectStatus({
        hostname,
        root: typeof values.root === "string" ? values.root : "/",
        configFile: typeof values.config === "string" ? values.config : undefined,
        env: process.env,
      });
      if (values.json === true) {
        writeLine("stdout", JSON.stringify(status.statusJson(report), null, 2));
        return 0;
      }
      writeLines(await status.renderStatusText(report));
      return 0;
    },
  },
];
