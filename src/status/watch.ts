/**
 * `ogygia status --watch`: the report, redrawn from an etcd watch or
 * ZooKeeper watches whenever the fleet changes, until stopped.
 */

import { jsonOutput, loadContext, openBackend, type OutputLine } from "../command/index.js";
import { OgygiaError, errorMessage } from "../core/index.js";
import { describeBackends, tableFromSnapshot, type FleetSnapshot } from "../fleet/index.js";
import { readLocalStates } from "../system/index.js";
import { buildReport, type StatusOptions, type StatusReport } from "./collect.js";
import { renderStatusText, statusJson } from "./render.js";

/** Clears a terminal and puts the cursor at the top left. */
const CLEAR_SCREEN = "\u001b[H\u001b[2J";

export interface WatchOptions extends StatusOptions {
  /** Stops the watch; `watchStatus` then resolves. */
  signal: AbortSignal;
  /** Called with each new report, one call at a time. */
  onReport: (report: StatusReport) => Promise<void> | void;
  /** What needs the fleet, for the error without one (default `--watch`). */
  purpose?: string;
}

/**
 * Calls `onReport` with a report now and after each change in the fleet,
 * until `signal` aborts. Only the newest snapshot waits while a report is
 * being delivered, so a slow consumer never makes work pile up. While the
 * backend is unreachable the report carries the error (and the local host);
 * the watch keeps retrying. Throws `OgygiaError` for a broken configuration
 * or when no backend is configured.
 */
export async function watchStatus(options: WatchOptions): Promise<void> {
  const { source, config, detected } = await loadContext(options);
  const backend = await openBackend(config);
  if (!config || !backend) {
    const purpose = options.purpose ?? "--watch";
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      config
        ? `${purpose} needs a fleet to watch, and ${source.displayPath} configures ${describeBackends("label", "nor")}`
        : `${purpose} needs a fleet to watch, and there is no configuration file at ${source.displayPath}`,
      {
        hint:
          options.purpose === undefined
            ? "Run 'ogygia status' without --watch for this host alone."
            : `Configure ${describeBackends("label", "or")} in ${source.displayPath}, or pass --config.`,
        exitCode: 2,
      },
    );
  }
  const { kind } = backend;
  const { namespace } = backend.config;

  type Update = { snapshot: FleetSnapshot; error: null } | { snapshot: null; error: string };
  let latest: Update | undefined;
  let delivering = false;
  let failed: ((err: unknown) => void) | undefined;

  const deliver = async (): Promise<void> => {
    delivering = true;
    try {
      while (latest !== undefined && !options.signal.aborted) {
        const update = latest;
        latest = undefined;
        const states = await readLocalStates(options.root);
        const fleet =
          update.snapshot === null
            ? { kind, namespace, table: null, error: update.error }
            : { kind, namespace, table: tableFromSnapshot(update.snapshot), error: null };
        await options.onReport(
          buildReport({ config, detected, states, fleet, root: options.root }),
        );
      }
    } finally {
      delivering = false;
    }
  };
  const offer = (update: Update): void => {
    latest = update;
    if (!delivering) deliver().catch((err: unknown) => failed?.(err));
  };

  const done = new Promise<void>((resolve, reject) => {
    failed = reject;
    if (options.signal.aborted) resolve();
    options.signal.addEventListener(
      "abort",
      () => {
        resolve();
      },
      { once: true },
    );
  });
  const watch = backend.watchHosts({
    onSnapshot: (snapshot) => {
      offer({ snapshot, error: null });
    },
    onError: (err) => {
      if (err instanceof OgygiaError) offer({ snapshot: null, error: errorMessage(err) });
      else failed?.(err);
    },
  });
  try {
    await done;
  } finally {
    await watch.close();
    await backend.close();
  }
}

/** How each new report is printed. */
export interface WatchPrinter {
  /** Prints a report, unless it would print exactly what was printed last. */
  print(report: StatusReport): Promise<OutputLine[]>;
}

/**
 * Frames for a terminal (clear the screen, draw the table), for a pipe or
 * file (each new table after a blank line), or JSON (one document per
 * line). Reports that would print the same as the last one print nothing:
 * a publisher's `updated_at` refresh does not redraw the table.
 */
export function watchPrinter(mode: { json: boolean; tty: boolean }): WatchPrinter {
  let last: string | undefined;
  let frames = 0;
  return {
    async print(report) {
      const lines: OutputLine[] = mode.json
        ? [jsonOutput(statusJson(report), "line")]
        : await renderStatusText(report);
      const key = JSON.stringify(lines);
      if (key === last) return [];
      last = key;
      frames += 1;
      if (mode.json) return lines;
      const [first, ...rest] = lines;
      if (!first) return [];
      if (mode.tty) return [{ stream: first.stream, text: CLEAR_SCREEN + first.text }, ...rest];
      return frames > 1 ? [{ stream: "stdout", text: "" }, ...lines] : lines;
    },
  };
}
