/**
 * Watching the three state links. They change by atomic replacement (a new
 * link renamed over the old one), which a watch on the link itself would
 * miss after the first change: the watched inode is gone. So the folders
 * that hold them are watched instead, and only events naming a state link
 * count. Events close together are reported once.
 */

import { watch, type FSWatcher } from "node:fs";
import path from "node:path";

import { errorMessage } from "../core/index.js";
import { STATE_PATHS, resolveInRoot } from "../system/index.js";

/** Wait this long after an event for the ones that usually follow it... */
export const SETTLE_MS = 100;
/** ...but never longer than this after the first, however busy the folder. */
export const MAX_SETTLE_MS = 500;

/** Folder (logical, under the root) → names in it that are state links. */
function watchedFolders(): Map<string, Set<string>> {
  const folders = new Map<string, Set<string>>();
  for (const link of Object.values(STATE_PATHS)) {
    const folder = path.posix.dirname(link);
    const names = folders.get(folder) ?? new Set<string>();
    names.add(path.posix.basename(link));
    folders.set(folder, names);
  }
  return folders;
}

/**
 * Calls `fire` once per burst: `settleMs` after the last call to `trigger`,
 * or `maxMs` after the first, whichever comes first.
 */
export class Debouncer {
  private timer: NodeJS.Timeout | undefined;
  private first = 0;
  private readonly fire: () => void;
  private readonly settleMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(fire: () => void, options: { settleMs: number; maxMs: number; now?: () => number }) {
    this.fire = fire;
    this.settleMs = options.settleMs;
    this.maxMs = options.maxMs;
    this.now = options.now ?? Date.now;
  }

  trigger(): void {
    const now = this.now();
    if (this.timer === undefined) this.first = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.settleMs, this.first + this.maxMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.fire();
    }, wait);
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

export interface StateWatcherEvents {
  /** A state link changed (debounced). */
  onChange(): void;
  /** A folder could not be watched or its watch failed; `ensure` retries it. */
  onProblem(message: string): void;
}

/** Watches the state links' folders under a root until closed. */
export class StateLinkWatcher {
  private readonly root: string;
  private readonly events: StateWatcherEvents;
  private readonly debouncer: Debouncer;
  private readonly watchers = new Map<string, FSWatcher>();
  private closed = false;

  constructor(root: string, events: StateWatcherEvents) {
    this.root = root;
    this.events = events;
    this.debouncer = new Debouncer(
      () => {
        events.onChange();
      },
      { settleMs: SETTLE_MS, maxMs: MAX_SETTLE_MS },
    );
  }

  /** True when every folder is watched. */
  get complete(): boolean {
    return this.watchers.size === watchedFolders().size;
  }

  /**
   * Starts watching the folders not watched yet (at start, and again after
   * a folder was missing or its watch failed). Returns true when a watch was
   * (re)started: changes may have been missed before it.
   */
  async ensure(): Promise<boolean> {
    let started = false;
    for (const [folder, names] of watchedFolders()) {
      if (this.closed || this.watchers.has(folder)) continue;
      let physical: string;
      let watcher: FSWatcher;
      try {
        physical = await resolveInRoot(this.root, folder);
        // close() or another ensure() may have run while this one waited.
        if (this.isClosed() || this.watchers.has(folder)) continue;
        watcher = watch(physical, { persistent: false }, (_event, name) => {
          // Linux always names the entry; count an unnamed event to be safe.
          if (name === null || names.has(name)) this.debouncer.trigger();
        });
      } catch (err) {
        this.events.onProblem(`cannot watch ${folder} under ${this.root}: ${errorMessage(err)}`);
        continue;
      }
      watcher.on("error", (err) => {
        watcher.close();
        if (this.watchers.get(folder) === watcher) this.watchers.delete(folder);
        this.events.onProblem(`watch on ${physical} failed: ${errorMessage(err)}`);
      });
      this.watchers.set(folder, watcher);
      started = true;
    }
    return started;
  }

  private isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    this.debouncer.cancel();
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }
}
