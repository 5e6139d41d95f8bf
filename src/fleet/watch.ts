/**
 * Turns "something changed" notifications from a backend into fresh
 * snapshots: changes that arrive together are read once, one read runs at a
 * time, and failed reads are retried with bounded backoff. Memory and work
 * stay bounded however fast notifications arrive.
 */

import { Backoff, OgygiaError, delay } from "../core/index.js";
import type { FleetSnapshot, FleetWatchHandlers } from "./types.js";

/** How long to wait after a notification for the ones that usually follow it. */
const SETTLE_MS = 50;

export class SnapshotRefresher {
  private readonly read: () => Promise<FleetSnapshot>;
  private readonly handlers: FleetWatchHandlers;
  private readonly stop = new AbortController();
  private readonly backoff = new Backoff({ initialMs: 250, maxMs: 10_000 });
  private pending = false;
  private running = false;

  constructor(read: () => Promise<FleetSnapshot>, handlers: FleetWatchHandlers) {
    this.read = read;
    this.handlers = handlers;
  }

  /** Asks for a fresh snapshot; cheap to call often. */
  trigger(): void {
    if (this.stop.signal.aborted) return;
    this.pending = true;
    if (this.running) return;
    this.running = true;
    this.loop().catch((err: unknown) => {
      this.close();
      this.handlers.onError(err);
    });
  }

  /** Stops: no snapshot or error is delivered after this returns. */
  close(): void {
    this.stop.abort();
  }

  /** Whether `close` was called. A method, not a getter: it changes across awaits. */
  isClosed(): boolean {
    return this.stop.signal.aborted;
  }

  private async loop(): Promise<void> {
    const { signal } = this.stop;
    try {
      while (this.pending && !this.isClosed()) {
        await delay(SETTLE_MS, signal);
        this.pending = false;
        try {
          const snapshot = await this.read();
          if (this.isClosed()) return;
          this.backoff.reset();
          this.handlers.onSnapshot(snapshot);
        } catch (err) {
          if (!(err instanceof OgygiaError)) throw err;
          if (this.isClosed()) return;
          this.handlers.onError(err);
          this.pending = true;
          await delay(this.backoff.next(), signal);
        }
      }
    } finally {
      // Set in the same synchronous step as the loop's last check, so a
      // trigger() can never fall between the two and be lost.
      this.running = false;
    }
  }
}
