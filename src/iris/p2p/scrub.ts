/**
 * Checking NAR cache entries against their NAR hash. An entry recovered at
 * start was hashed before it was stored, but the disk may have changed it
 * since: it is hashed again on first use (before any byte of it is served
 * or offered to a peer) and by the background scrub, which walks the
 * recovered entries soon after start and then every entry every
 * `intervalMs`. A bad entry is removed (`NarCache.verify`), so the next
 * request fetches the path from peers again.
 */

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

import { encodeNix32 } from "../../nix/index.js";
import { errorFields, type Logger } from "../../log/index.js";
import type { NarCache } from "./nar-cache.js";

/** nix32 of the SHA-256 of `size` bytes of `file` from `offset`; undefined when the file is short. */
export async function hashFileRange(
  file: string,
  offset: number,
  size: number,
): Promise<string | undefined> {
  const hasher = createHash("sha256");
  let read = 0;
  if (size > 0) {
    const stream = createReadStream(file, {
      start: offset,
      end: offset + size - 1,
      highWaterMark: 1024 * 1024,
    });
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      read += chunk.length;
      hasher.update(chunk);
    }
  }
  if (read !== size) return undefined;
  return encodeNix32(hasher.digest());
}

export interface Scrub {
  /** Resolves once the pass under way (if any) ended. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the scrub: a first pass over entries not verified yet after
 * `firstDelayMs`, then a pass over every entry every `intervalMs` (0: no
 * periodic passes). One entry at a time.
 */
export function startScrub(options: {
  cache: NarCache;
  log: Logger;
  intervalMs: number;
  firstDelayMs?: number;
}): Scrub {
  const { cache, log } = options;
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const pass = async (all: boolean): Promise<void> => {
    let checked = 0;
    let removed = 0;
    for (const hashPart of [...cache.hashParts()]) {
      if (stopped) return;
      const entry = cache.get(hashPart);
      if (entry === undefined || (!all && entry.verified !== false)) continue;
      checked += 1;
      if (!(await cache.verify(entry, { force: all }))) removed += 1;
    }
    if (checked > 0) log.info({ checked, removed }, "NAR cache: scrub done");
  };
  const run = (all: boolean): void => {
    running = running
      .then(() => pass(all))
      .catch((err: unknown) => {
        log.error(errorFields(err), "NAR cache: scrub failed");
      });
  };
  const first = setTimeout(() => {
    run(false);
  }, options.firstDelayMs ?? 1000);
  first.unref();
  const every =
    options.intervalMs > 0
      ? setInterval(() => {
          run(true);
        }, options.intervalMs)
      : undefined;
  every?.unref();
  return {
    idle: () => running,
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(every);
      await running;
    },
  };
}
