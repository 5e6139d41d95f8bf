/**
 * What every `Coordinator` does the same way whatever the store: the
 * per-call deadline, the closed check, the set of leases it granted (each
 * abandoned when the coordinator closes), a watch's bounded event stream,
 * and locks, which are built on compare-and-swap and watches alone
 * (`lock.ts`). An adapter subclasses it and writes only what talks to its
 * store.
 */

import type { BackendKind } from "./backends.js";
import type {
  AcquireOptions,
  CallOptions,
  CasManyResult,
  CasResult,
  Coordinator,
  Expected,
  KeyChange,
  Lease,
  LeaseOptions,
  Lock,
  LockHolder,
  LockOptions,
  Read,
  Revision,
  SetOptions,
  WatchEvent,
  WatchOptions,
} from "./coordination.js";
import { readError } from "./errors.js";
import { eventStream, type EventSink } from "./event-stream.js";
import { acquireLock, lockHolder, tryAcquireLock } from "./lock.js";
import type { BackendConfig } from "./types.js";

/** Events held for a slow consumer of one watch before it fails. */
const MAX_BUFFERED_EVENTS = 10_000;

/** A lease as its coordinator tracks it. */
export interface TrackedLease extends Lease {
  /** Stops renewing without waiting for the store. */
  abandon(reason: string): void;
}

export abstract class CoordinatorBase<L extends TrackedLease> implements Coordinator {
  abstract readonly kind: BackendKind;
  readonly config: BackendConfig;
  protected readonly timeoutMs: number;
  /** Aborted by `close`. */
  protected readonly stop = new AbortController();
  private readonly leases = new Set<L>();

  constructor(config: BackendConfig) {
    this.config = config;
    this.timeoutMs = config.timeoutSeconds * 1000;
  }

  abstract get(key: string, options?: CallOptions): Promise<Read>;
  abstract compareAndSet(
    key: string,
    expected: Expected,
    value: Uint8Array,
    options?: SetOptions,
  ): Promise<CasResult>;
  abstract compareAndSetMany(
    changes: readonly KeyChange[],
    options?: CallOptions,
  ): Promise<CasManyResult>;
  abstract compareAndDelete(
    key: string,
    expected: { version: Revision },
    options?: CallOptions,
  ): Promise<boolean>;
  abstract grantLease(options: LeaseOptions): Promise<Lease>;
  abstract watch(key: string, options: WatchOptions): AsyncIterable<WatchEvent>;

  /** Closes the adapter's connections; called once, after every lease was abandoned. */
  protected abstract closeConnections(): void;

  protected deadline(options?: CallOptions): number {
    return options?.timeoutMs ?? this.timeoutMs;
  }

  protected checkOpen(): void {
    if (this.stop.signal.aborted) throw new Error("the coordinator is closed");
  }

  /** Tracks a lease just granted until it is lost; abandons it at once when closed meanwhile. */
  protected track(lease: L): L {
    this.leases.add(lease);
    lease.lost.addEventListener(
      "abort",
      () => {
        this.leases.delete(lease);
      },
      { once: true },
    );
    if (this.stop.signal.aborted) lease.abandon("the coordinator is closed");
    return lease;
  }

  /** True when `lease` was granted here and is not lost yet. */
  protected owns(lease: Lease): lease is L {
    return this.leases.has(lease as L);
  }

  /**
   * A watch's events, ended by the caller's signal or `close`; `start`
   * feeds the sink and returns what stops it.
   */
  protected watchStream(
    key: string,
    options: WatchOptions,
    start: (sink: EventSink<WatchEvent>, signal: AbortSignal) => () => Promise<void>,
  ): AsyncIterable<WatchEvent> {
    return eventStream<WatchEvent>(
      {
        signal: AbortSignal.any([options.signal, this.stop.signal]),
        maxBuffered: MAX_BUFFERED_EVENTS,
        overflowError: () =>
          readError(
            this.kind,
            this.config,
            new Error(`the watch of ${key} fell ${MAX_BUFFERED_EVENTS} events behind`),
          ),
      },
      start,
    );
  }

  tryAcquireLock(key: string, options: LockOptions): Promise<Lock | null> {
    return tryAcquireLock(this, key, options);
  }

  acquireLock(key: string, options: AcquireOptions): Promise<Lock> {
    return acquireLock(this, key, options);
  }

  lockHolder(key: string, options?: CallOptions): Promise<LockHolder | null> {
    return lockHolder(this, key, options);
  }

  close(): Promise<void> {
    if (!this.stop.signal.aborted) {
      this.stop.abort();
      for (const lease of [...this.leases]) lease.abandon("the coordinator is closed");
      this.closeConnections();
    }
    return Promise.resolve();
  }
}
