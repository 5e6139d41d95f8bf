/**
 * The local index: a bloom filter over the hash parts of everything this
 * daemon serves on `/local/...` (the serveable store paths, and the NARs in
 * its cache), published at `GET /bloom` for the peers.
 *
 * - **Build**: at start, from the store database (every valid path, checked
 *   with the local resolver's serveability rule), in slices that yield to
 *   the event loop, so HTTP is served meanwhile. Sized by the bloom module
 *   from the real count (with headroom) and `[bloom] false_positive_rate`.
 * - **Additions**: `hasChanged()` (one `PRAGMA data_version`, ~10 µs) is
 *   polled every `pollMs` (1 s). After a change the valid paths are listed
 *   and compared with the paths known; new serveable paths are added to
 *   the filter at once. Paths known but not serveable (unsigned) are
 *   checked again after a change too, since `nix store sign` makes a path
 *   serveable without adding one. Each of the two passes waits at least
 *   ten times its own last duration before it runs again, so on a store of
 *   100,000 paths (a listing takes ~130 ms) the index costs at most a tenth
 *   of the event loop however busy Nix is.
 * - **Deletions** (and NARs evicted from the cache): a bloom filter cannot
 *   forget, so the filter is rebuilt from the paths known, `rebuildDelayMs`
 *   (5 s) after the first deletion seen; until then the filter has a few
 *   extra false positives, which cost a peer one 404. A filter holding more
 *   paths than it was sized for is rebuilt the same way, at once.
 * - **Rescan** (`POST /rescan`): named paths are read and indexed at once;
 *   without paths, the whole store is compared now, throttles ignored.
 *
 * Every pass runs under one lock, so the maps are never read half-updated.
 */

import { OgygiaError } from "../../core/index.js";
import { parseStorePath, type PathInfo, type StoreDb } from "../../nix/index.js";
import type { RescanAnswer } from "../index.js";
import { errorFields, type IrisLogger } from "../log/index.js";
import { isServeable } from "../store/index.js";
import { bloomEtag, buildBloom, serializeBloom, type BloomFilter } from "./bloom.js";
import type { P2pMetrics } from "./metrics.js";

/** What a rescan did: the JSON body of `POST /rescan`. */
export type RescanResult = RescanAnswer;

export interface BloomSnapshot {
  bytes: Buffer;
  /** Strong, quoted. */
  etag: string;
}

export interface LocalIndex {
  readonly ready: boolean;
  /** Resolves when the first build completed. */
  whenReady(): Promise<void>;
  /** The filter in its wire format, or undefined before the first build. */
  snapshot(): BloomSnapshot | undefined;
  /** True when the hash part is in the index (exact, not the filter's answer). */
  has(hashPart: string): boolean;
  /**
   * A hash part now served locally besides the store (a NAR entered the
   * cache); `extraHashParts` must list it too, as rebuilds read from there.
   */
  addHashPart(hashPart: string): void;
  /** Something served locally went away (a cached NAR was evicted): rebuild soon. */
  removed(): void;
  /** Indexes `paths` at once, or with none compares the whole store now. */
  rescan(paths: readonly string[]): Promise<RescanResult>;
  close(): void;
}

export interface LocalIndexOptions {
  db: StoreDb;
  /** A signing key is configured: every valid path is serveable. */
  canSign: boolean;
  falsePositiveRate: number;
  /** Hash parts served locally besides the store's (the NAR cache). */
  extraHashParts?: () => Iterable<string>;
  log: IrisLogger;
  metrics?: P2pMetrics | undefined;
  pollMs?: number;
  rebuildDelayMs?: number;
}

/** Store queries per slice before yielding to the event loop. */
const SLICE = 1000;
/** A pass waits this many times its own last duration before running again. */
const DUTY_FACTOR = 10;

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Starts building the index and watching the store. */
export function createLocalIndex(options: LocalIndexOptions): LocalIndex {
  const { db, log, metrics, canSign } = options;
  const storeDir = db.location.storeDir;
  const pollMs = options.pollMs ?? 1000;
  const rebuildDelayMs = options.rebuildDelayMs ?? 5000;
  const hashOf = (storePath: string): string =>
    storePath.slice(storeDir.length + 1, storeDir.length + 33);

  /** Every valid path seen, and whether it is serveable. */
  let known = new Map<string, boolean>();
  /** Hash parts in the filter (exactly; the filter itself may say yes to more). */
  let members = new Set<string>();
  let filter: BloomFilter | undefined;
  let snapshot: BloomSnapshot | undefined;
  let closed = false;
  let dirty = false;
  let recheckPending = false;
  let nextListAt = 0;
  let nextRecheckAt = 0;
  let rebuildTimer: NodeJS.Timeout | undefined;
  let markReady = (): void => undefined;
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  let lock: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(task: () => Promise<T> | T): Promise<T> => {
    const run = lock.then(task, task);
    lock = run.catch(() => undefined);
    return run;
  };

  const serveable = (info: PathInfo): boolean => isServeable(info, canSign, storeDir);

  const closedError = (): OgygiaError =>
    new OgygiaError("ERR_OGYGIA_IRISD", "the daemon is stopping");

  const rebuild = (reason: string): void => {
    const next = new Set<string>();
    for (const [storePath, ok] of known) if (ok) next.add(hashOf(storePath));
    for (const hashPart of options.extraHashParts?.() ?? []) next.add(hashPart);
    const started = performance.now();
    filter = buildBloom([...next], { falsePositiveRate: options.falsePositiveRate });
    members = next;
    snapshot = undefined;
    metrics?.indexRebuilt(reason);
    metrics?.indexSize(members.size);
    const fields = {
      reason,
      paths: members.size,
      storePaths: known.size,
      bits: filter.bits,
      hashes: filter.hashes,
      capacity: filter.capacity,
      ms: Math.round(performance.now() - started),
    };
    if (reason === "start") log.info(fields, "bloom index built");
    else log.info(fields, "bloom index rebuilt");
  };

  const add = (hashPart: string): boolean => {
    if (filter === undefined || members.has(hashPart)) return false;
    members.add(hashPart);
    filter.add(hashPart);
    snapshot = undefined;
    metrics?.indexSize(members.size);
    if (filter.overCapacity) scheduleRebuild("capacity", 0);
    return true;
  };

  function scheduleRebuild(reason: string, delay: number): void {
    if (rebuildTimer !== undefined || closed) return;
    rebuildTimer = setTimeout(() => {
      rebuildTimer = undefined;
      void exclusive(() => {
        if (!closed) rebuild(reason);
      });
    }, delay);
    rebuildTimer.unref();
  }

  /** Reads `paths` (slice by slice) into `into`; returns the serveable ones added. */
  const readPaths = async (
    paths: readonly string[],
    into: Map<string, boolean>,
  ): Promise<number> => {
    let added = 0;
    for (let i = 0; i < paths.length; i++) {
      if (i > 0 && i % SLICE === 0) {
        await yieldToLoop();
        if (closed) throw closedError();
      }
      const storePath = paths[i] ?? "";
      const info = db.queryPathInfo(storePath);
      if (info === undefined) {
        into.delete(storePath);
        continue;
      }
      const ok = serveable(info);
      into.set(storePath, ok);
      if (ok && add(hashOf(storePath))) added += 1;
    }
    return added;
  };

  const build = async (): Promise<void> => {
    db.hasChanged(); // the baseline: changes from now on are seen by the poll
    const started = performance.now();
    const paths = db.queryAllValidPaths();
    const next = new Map<string, boolean>();
    if (canSign) {
      for (const storePath of paths) next.set(storePath, true);
    } else {
      await readPaths(paths, next);
    }
    known = next;
    rebuild("start");
    log.debug({ ms: Math.round(performance.now() - started) }, "store read for the index");
  };

  /** Lists the store and indexes new paths; returns the serveable ones added. */
  const listPass = async (): Promise<number> => {
    dirty = false;
    const started = performance.now();
    const paths = db.queryAllValidPaths();
    const listed = performance.now() - started;
    nextListAt = performance.now() + Math.max(pollMs, DUTY_FACTOR * listed);
    const current = new Set(paths);
    let deleted = false;
    for (const [storePath, ok] of known) {
      if (!current.has(storePath)) {
        known.delete(storePath);
        if (ok) deleted = true;
      }
    }
    if (deleted) scheduleRebuild("deleted", rebuildDelayMs);
    const fresh = paths.filter((p) => !known.has(p));
    return readPaths(fresh, known);
  };

  /** Checks again the paths known but not serveable (signatures may have been added). */
  const recheckPass = async (): Promise<number> => {
    recheckPending = false;
    const started = performance.now();
    const unserveable: string[] = [];
    for (const [storePath, ok] of known) if (!ok) unserveable.push(storePath);
    const added = await readPaths(unserveable, known);
    nextRecheckAt =
      performance.now() + Math.max(pollMs, DUTY_FACTOR * (performance.now() - started));
    return added;
  };

  const logAdded = (added: number, how: string): void => {
    if (added > 0) log.debug({ added, paths: members.size, how }, "bloom index: paths added");
  };

  const poll = (): void => {
    if (filter === undefined || closed) return;
    if (db.hasChanged()) {
      dirty = true;
      recheckPending = true;
    }
    const t = performance.now();
    const list = dirty && t >= nextListAt;
    const recheck = recheckPending && t >= nextRecheckAt;
    if (!list && !recheck) return;
    exclusive(async () => {
      let added = 0;
      if (list) added += await listPass();
      if (recheck) added += await recheckPass();
      logAdded(added, "store change");
    }).catch((err: unknown) => {
      if (!closed) log.error(errorFields(err), "bloom index: reading the store failed");
    });
  };

  let retryTimer: NodeJS.Timeout | undefined;
  const firstBuild = (): void => {
    exclusive(build).then(markReady, (err: unknown) => {
      if (closed) return;
      log.error({ ...errorFields(err), retryInMs: 5000 }, "bloom index: building failed");
      retryTimer = setTimeout(firstBuild, 5000);
      retryTimer.unref();
    });
  };
  firstBuild();
  const poller = setInterval(poll, pollMs);
  poller.unref();

  return {
    get ready() {
      return filter !== undefined;
    },
    whenReady: () => ready,
    snapshot() {
      if (filter === undefined) return undefined;
      snapshot ??= { bytes: serializeBloom(filter), etag: bloomEtag(filter) };
      return snapshot;
    },
    has: (hashPart) => members.has(hashPart),
    addHashPart(hashPart) {
      add(hashPart);
    },
    removed() {
      scheduleRebuild("evicted", rebuildDelayMs);
    },
    async rescan(paths) {
      await ready;
      return exclusive(async () => {
        if (closed) throw closedError();
        const result: RescanResult = { indexed: 0, added: 0, notServeable: [], missing: [] };
        if (paths.length === 0) {
          // The whole store, now: every pass regardless of its throttle.
          db.hasChanged();
          result.added = (await listPass()) + (await recheckPass());
        } else {
          for (const storePath of paths) {
            parseStorePath(storePath, storeDir);
            const info = db.queryPathInfo(storePath);
            if (info === undefined) {
              result.missing.push(storePath);
              continue;
            }
            const ok = serveable(info);
            known.set(storePath, ok);
            if (!ok) result.notServeable.push(storePath);
            else if (add(hashOf(storePath))) result.added += 1;
          }
        }
        logAdded(result.added, "rescan");
        result.indexed = members.size;
        return result;
      });
    },
    close() {
      closed = true;
      clearInterval(poller);
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      if (rebuildTimer !== undefined) clearTimeout(rebuildTimer);
    },
  };
}
