/**
 * `ogygia status`'s entry of the command table, on its own so that a
 * `status` start loads it without the rest of the table (`commands.ts`,
 * with every other command's metadata and help text, is imported only for
 * other commands, help and completion: src/cli/main.ts).
 */

import * as status from "../status/index.js";
import { describeBackends } from "../fleet/index.js";
import { detectHostname } from "../system/index.js";
import type { CommandSpec } from "./args.js";
import { outputStream, writeLines } from "./output.js";
import { CONFIG_ENVIRONMENT, CONFIG_OPTION, ROOT_OPTION, text } from "./shared.js";

export const STATUS_COMMAND: CommandSpec = {
  path: ["status"],
  summary: "show which revision built each system state, here or across the fleet",
  description:
    "Show the git revision that built each system state (current, booted, next boot),\n" +
    `for this host alone or for the whole fleet read from ${describeBackends("label", "or")}.`,
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
    // `hostname -f` runs while the rest (config, backend) loads.
    const hostname = detectHostname({ env: process.env });
    const options = {
      hostname,
      root: text(values.root) ?? "/",
      configFile: text(values.config),
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
        tty: outputStream("stdout").isTTY,
      });
      await status.watchStatus({
        ...options,
        signal: stop.signal,
        onReport: async (report) => {
          writeLines(await printer.print(report));
          // Wait until the frame is out: a reader that stalls holds up the
          // next frame instead of letting output pile up in memory.
          await new Promise<void>((resolve) =>
            outputStream("stdout").write("", () => {
              resolve();
            }),
          );
        },
      });
      return 0;
    }
    const report = await status.collectStatus(options);
    if (values.json === true) {
      const { jsonOutput } = await import("../command/index.js");
      writeLines([jsonOutput(status.statusJson(report))]);
      return 0;
    }
    writeLines(await status.renderStatusText(report));
    return 0;
  },
};
