/**
 * Keeps a lease alive from the client side, the same way for every backend:
 * a renewal every third of the TTL, each with a deadline, and the lease
 * declared lost as soon as the client can no longer be sure the store keeps
 * it: the store says it is gone, or no renewal was confirmed for a whole TTL
 * counted from when that renewal was sent (the store counts from when it
 * received it, which is later).
 */

import { OgygiaError, delay } from "../core/index.js";
import { DeadlineError, withDeadline } from "./errors.js";

export interface LeaseKeeperOptions {
  /** The TTL the store granted, in milliseconds. */
  ttlMs: number;
  /** When the grant request was sent (the lease is valid from there). */
  grantedAt: number;
  /** The deadline of one renewal at most, in milliseconds. */
  timeoutMs: number;
  /** One renewal: true when renewed, false when the store no longer knows the lease. */
  renew(timeoutMs: number): Promise<boolean>;
  /** For tests: the clock. */
  now?: () => number;
}

export class LeaseKeeper {
  private readonly controller = new AbortController();
  private readonly options: LeaseKeeperOptions;
  private readonly now: () => number;
  private confirmedAt: number;

  constructor(options: LeaseKeeperOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
    this.confirmedAt = options.grantedAt;
    void this.loop();
  }

  /**
   * Aborted once the lease is lost or stopped; the reason is an `Error`
   * saying why (a renewal's unexpected failure is passed on as is).
   */
  get lost(): AbortSignal {
    return this.controller.signal;
  }

  /** Stops renewing and marks the lease lost with `reason` (first reason wins). */
  stop(reason: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new Error(reason));
  }

  /** A method, not a field read: it changes across awaits. */
  private isStopped(): boolean {
    return this.controller.signal.aborted;
  }

  private async loop(): Promise<void> {
    const { ttlMs, timeoutMs } = this.options;
    const { signal } = this.controller;
    // Each round waits before it renews (at most three renewals per TTL),
    // and without a confirmed renewal the horizon is reached within a TTL.
    while (!signal.aborted) {
      const remaining = this.confirmedAt + ttlMs - this.now();
      if (remaining <= 0) {
        this.stop(`no renewal confirmed within the lease's ${ttlMs} ms`);
        return;
      }
      await delay(Math.min(ttlMs / 3, remaining), signal);
      if (this.isStopped()) return;
      const sentAt = this.now();
      const left = this.confirmedAt + ttlMs - sentAt;
      if (left <= 0) continue;
      const budget = Math.min(timeoutMs, left);
      try {
        const renewed = await withDeadline(this.options.renew(budget), budget);
        if (this.isStopped()) return;
        if (!renewed) {
          this.stop("the store no longer knows the lease (expired or revoked)");
          return;
        }
        this.confirmedAt = sentAt;
      } catch (err) {
        // Not confirmed: the horizon above decides when that means lost.
        if (err instanceof OgygiaError || err instanceof DeadlineError) continue;
        // A bug: the lease cannot be kept, and the reason says why.
        if (!this.isStopped()) this.controller.abort(err);
        return;
      }
    }
  }
}
