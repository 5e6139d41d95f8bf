/**
 * `nebula`: the facts of this host's Nebula certificate (`[ogygia.nebula]
 * cert_file`, read under the root) as `ogygia nebula status` reads them. Not
 * configured: the key is not published at all. Configured but unreadable:
 * published as unknown (its key is deleted) with the reason logged. The
 * file is read with nebula-cert only when it changed since the last read,
 * and its folder is watched so that a renewed certificate is republished
 * at once, not at the next resync.
 */

import { watch, type FSWatcher } from "node:fs";
import { stat } from "node:fs/promises";
import path from "node:path";

import { OgygiaError, errorMessage } from "../core/index.js";
import { encodeNebulaFacts, readCertificate } from "../nebula/index.js";
import { Debouncer, MAX_SETTLE_MS, SETTLE_MS } from "./watch.js";

/** The cert file under `root`. */
function certPath(root: string, certFile: string): string {
  return path.isAbsolute(certFile) ? path.join(root, certFile) : path.resolve(certFile);
}

let cache: { file: string; stamp: string; value: string } | undefined;

/**
 * The value to publish as `nebula`: undefined when no cert file is
 * configured, null (with the problem) when it cannot be read.
 */
export async function readNebulaValue(
  root: string,
  certFile: string | undefined,
): Promise<{ value: string | null; problem?: string } | undefined> {
  if (certFile === undefined) return undefined;
  const file = certPath(root, certFile);
  try {
    const info = await stat(file);
    const stamp = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    if (cache?.file === file && cache.stamp === stamp) return { value: cache.value };
    const facts = await readCertificate(file);
    if (facts.isCa) {
      return { value: null, problem: `${file} ([ogygia.nebula] cert_file) is a CA certificate` };
    }
    const value = encodeNebulaFacts(facts);
    cache = { file, stamp, value };
    return { value };
  } catch (err) {
    if (!(err instanceof OgygiaError) && !(err instanceof Error && "code" in err)) throw err;
    return {
      value: null,
      problem: `the Nebula certificate ${file} ([ogygia.nebula] cert_file): ${errorMessage(err)}`,
    };
  }
}

/**
 * Calls `onChange` (debounced) when the cert file is replaced or written;
 * its folder is watched, as renames over it would escape a watch on the
 * file. Returns a function that stops watching; without a cert file, or
 * when the folder cannot be watched (`onProblem` says why), it does nothing
 * and the publisher's resync still picks the change up.
 */
export function watchNebulaCert(
  root: string,
  certFile: string | undefined,
  events: { onChange(): void; onProblem(message: string): void },
): () => void {
  if (certFile === undefined) return () => undefined;
  const file = certPath(root, certFile);
  const name = path.basename(file);
  const debouncer = new Debouncer(
    () => {
      events.onChange();
    },
    { settleMs: SETTLE_MS, maxMs: MAX_SETTLE_MS },
  );
  let watcher: FSWatcher;
  try {
    watcher = watch(path.dirname(file), { persistent: false }, (_event, changed) => {
      if (changed === null || changed === name) debouncer.trigger();
    });
  } catch (err) {
    events.onProblem(`cannot watch ${path.dirname(file)}: ${errorMessage(err)}`);
    return () => undefined;
  }
  watcher.on("error", (err) => {
    watcher.close();
    events.onProblem(`watch on ${path.dirname(file)} failed: ${errorMessage(err)}`);
  });
  return () => {
    debouncer.cancel();
    watcher.close();
  };
}
