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
import { errorFields, type Logger } from "../../log/index.js";
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
  log: Logger;
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
  const index = new StoreIndex(options);
  index.start();
  return index;
}

function closedError(): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_IRISD", "the daemon is stopping");
}

/**
 * The index: the paths known and serveable, the filter over them, and the
 * timers that keep it current (poll, debounced rebuild, build retry) until
 * `close`. Every pass over the store runs under one lock (`exclusive`).
 */
class StoreIndex implements LocalIndex {
  /** Every valid path seen, and whether it is serveable. */
  private known = new Map<string, boolean>();
  /** Hash parts in the filter (exactly; the filter itself may say yes to more). */
  private members = new Set<string>();
  private filter: BloomFilter | undefined;
  private cached: BloomSnapshot | undefined;
  private closed = false;
  private dirty = false;
  private recheckPending = false;
  private nextListAt = 0;
  private nextRecheckAt = 0;
  private rebuildTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private poller: NodeJS.Timeout | undefined;
  private markReady: () => void = () => undefined;
  private readonly readyPromise: Promise<void>;
  private lock: Promise<unknown> = Promise.resolve();
  private readonly db: StoreDb;
  private readonly log: Logger;
  private readonly metrics: P2pMetrics | undefined;
  private readonly storeDir: string;
  private readonly pollMs: number;
  private readonly rebuildDelayMs: number;

  constructor(private readonly options: LocalIndexOptions) {
    this.db = options.db;
    this.log = options.log;
    this.metrics = options.metrics;
    this.storeDir = options.db.location.storeDir;
    this.pollMs = options.pollMs ?? 1000;
    this.rebuildDelayMs = options.rebuildDelayMs ?? 5000;
    this.readyPromise = new Promise<void>((resolve) => {
      this.markReady = resolve;
    });
  }

  start(): void {
    this.firstBuild();
    this.poller = setInterval(() => {
      this.poll();
    }, this.pollMs);
    this.poller.unref();
  }

  get ready(): boolean {
    return this.filter !== undefined;
  }

  readonly whenReady = (): Promise<void> => this.readyPromise;

  snapshot(): BloomSnapshot | undefined {
    if (this.filter === undefined) return undefined;
    this.cached ??= { bytes: serializeBloom(this.filter), etag: bloomEtag(this.filter) };
    return this.cached;
  }

  readonly has = (hashPart: string): boolean => this.members.has(hashPart);

  addHashPart(hashPart: string): void {
    this.add(hashPart);
  }

  removed(): void {
    this.scheduleRebuild("evicted", this.rebuildDelayMs);
  }

  async rescan(paths: readonly string[]): Promise<RescanResult> {
    await this.readyPromise;
    return this.exclusive(async () => {
      if (this.closed) throw closedError();
      const result: RescanResult = { indexed: 0, added: 0, notServeable: [], missing: [] };
      if (paths.length === 0) {
        // The whole store, now: every pass regardless of its throttle.
        this.db.hasChanged();
        result.added = (await this.listPass()) + (await this.recheckPass());
      } else {
        this.rescanPaths(paths, result);
      }
      this.logAdded(result.added, "rescan");
      result.indexed = this.members.size;
      return result;
    });
  }

  close(): void {
    this.closed = true;
    clearInterval(this.poller);
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.rebuildTimer !== undefined) clearTimeout(this.rebuildTimer);
  }

  private hashOf(storePath: string): string {
    return storePath.slice(this.storeDir.length + 1, this.storeDir.length + 33);
  }

  private serveable(info: PathInfo): boolean {
    return isServeable(info, this.options.canSign, this.storeDir);
  }

  private exclusive<T>(task: () => Promise<T> | T): Promise<T> {
    const run = this.lock.then(task, task);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private rescanPaths(paths: readonly string[], result: RescanResult): void {
    for (const storePath of paths) {
      parseStorePath(storePath, this.storeDir);
      const info = this.db.queryPathInfo(storePath);
      if (info === undefined) {
        result.missing.push(storePath);
        continue;
      }
      const ok = this.serveable(info);
      this.known.set(storePath, ok);
      if (!ok) result.notServeable.push(storePath);
      else if (this.add(this.hashOf(storePath))) result.added += 1;
    }
  }

  private rebuild(reason: string): void {
    const next = new Set<string>();
    for (const [storePath, ok] of this.known) if (ok) next.add(this.hashOf(storePath));
    for (const hashPart of this.options.extraHashParts?.() ?? []) next.add(hashPart);
    const started = performance.now();
    const filter = buildBloom([...next], { falsePositiveRate: this.options.falsePositiveRate });
    this.filter = filter;
    this.members = next;
    this.cached = undefined;
    this.metrics?.indexRebuilt(reason);
    this.metrics?.indexSize(next.size);
    const fields = {
      reason,
      paths: next.size,
      storePaths: this.known.size,
      bits: filter.bits,
      hashes: filter.hashes,
      capacity: filter.capacity,
      ms: Math.round(performance.now() - started),
    };
    if (reason === "start") this.log.info(fields, "bloom index built");
    else this.log.info(fields, "bloom index rebuilt");
  }

  private add(hashPart: string): boolean {
    const filter = this.filter;
    if (filter === undefined || this.members.has(hashPart)) return false;
    this.members.add(hashPart);
    filter.add(hashPart);
    this.cached = undefined;
    this.metrics?.indexSize(this.members.size);
    if (filter.overCapacity) this.scheduleRebuild("capacity", 0);
    return true;
  }

  private scheduleRebuild(reason: string, delay: number): void {
    if (this.rebuildTimer !== undefined || this.closed) return;
    this.rebuildTimer = setTimeout(() => {
      this.rebuildTimer = undefined;
      void this.exclusive(() => {
        if (!this.closed) this.rebuild(reason);
      });
    }, delay);
    this.rebuildTimer.unref();
  }

  /** Reads `paths` (slice by slice) into `into`; returns the serveable ones added. */
  private async readPaths(paths: readonly string[], into: Map<string, boolean>): Promise<number> {
    let added = 0;
    for (let i = 0; i < paths.length; i++) {
      if (i > 0 && i % SLICE === 0) {
        await yieldToLoop();
        if (this.closed) throw closedError();
      }
      const storePath = paths[i] ?? "";
      const info = this.db.queryPathInfo(storePath);
      if (info === undefined) {
        into.delete(storePath);
        continue;
      }
      const ok = this.serveable(info);
      into.set(storePath, ok);
      if (ok && this.add(this.hashOf(storePath))) added += 1;
    }
    return added;
  }

  private async build(): Promise<void> {
    this.db.hasChanged(); // the baseline: changes from now on are seen by the poll
    const started = performance.now();
    const paths = this.db.queryAllValidPaths();
    const next = new Map<string, boolean>();
    if (this.options.canSign) {
      for (const storePath of paths) next.set(storePath, true);
    } else {
      await this.readPaths(paths, next);
    }
    this.known = next;
    this.rebuild("start");
    this.log.debug({ ms: Math.round(performance.now() - started) }, "store read for the index");
  }

  /** Lists the store and indexes new paths; returns the serveable ones added. */
  private async listPass(): Promise<number> {
    this.dirty = false;
    const started = performance.now();
    const paths = this.db.queryAllValidPaths();
    const listed = performance.now() - started;
    this.nextListAt = performance.now() + Math.max(this.pollMs, DUTY_FACTOR * listed);
    const current = new Set(paths);
    let deleted = false;
    for (const [storePath, ok] of this.known) {
      if (!current.has(storePath)) {
        this.known.delete(storePath);
        if (ok) deleted = true;
      }
    }
    if (deleted) this.scheduleRebuild("deleted", this.rebuildDelayMs);
    const fresh = paths.filter((p) => !this.known.has(p));
    return this.readPaths(fresh, this.known);
  }

  /** Checks again the paths known but not serveable (signatures may have been added). */
  private async recheckPass(): Promise<number> {
    this.recheckPending = false;
    const started = performance.now();
    const unserveable: string[] = [];
    for (const [storePath, ok] of this.known) if (!ok) unserveable.push(storePath);
    const added = await this.readPaths(unserveable, this.known);
    this.nextRecheckAt =
      performance.now() + Math.max(this.pollMs, DUTY_FACTOR * (performance.now() - started));
    return added;
  }

  private logAdded(added: number, how: string): void {
    if (added > 0) {
      this.log.debug({ added, paths: this.members.size, how }, "bloom index: paths added");
    }
  }

  private poll(): void {
    if (this.filter === undefined || this.closed) return;
    if (this.db.hasChanged()) {
      this.dirty = true;
      this.recheckPending = true;
    }
    const t = performance.now();
    const list = this.dirty && t >= this.nextListAt;
    const recheck = this.recheckPending && t >= this.nextRecheckAt;
    if (!list && !recheck) return;
    this.exclusive(async () => {
      let added = 0;
      if (list) added += await this.listPass();
      if (recheck) added += await this.recheckPass();
      this.logAdded(added, "store change");
    }).catch((err: unknown) => {
      if (!this.closed) this.log.error(errorFields(err), "bloom index: reading the store failed");
    });
  }

  private firstBuild(): void {
    this.exclusive(() => this.build()).then(this.markReady, (err: unknown) => {
      if (this.closed) return;
      this.log.error({ ...errorFields(err), retryInMs: 5000 }, "bloom index: building failed");
      this.retryTimer = setTimeout(() => {
        this.firstBuild();
      }, 5000);
      this.retryTimer.unref();
    });
  }
}
