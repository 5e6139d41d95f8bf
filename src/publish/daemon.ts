/**
 * The publisher's loop. One loop does everything in turn (renew liveness,
 * read back, publish, re-create `alive`), so no two backend calls ever
 * overlap and there is no state shared between tasks. It sleeps until the
 * next thing is due or a state link changes; when the backend fails it
 * waits with bounded exponential backoff, remembering that it owes a full
 * resync, and publishes the newest state once the backend answers again.
 */

import { Backoff, OgygiaError, delay, errorMessage } from "../core/index.js";
import type { FleetPublisher, StoredField } from "../fleet/index.js";
import {
  applyChanges,
  changesState,
  planPublication,
  readLocalPublication,
  storedValues,
  type LocalSources,
} from "./plan.js";
import { StateLinkWatcher } from "./watch.js";

/** The structured logger the daemon writes to (pino's `Logger` fits). */
export interface DaemonLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface DaemonOptions {
  publisher: FleetPublisher;
  /** Root under which the state links are read and watched (`--root`). */
  root: string;
  log: DaemonLogger;
  /** Seconds until `alive` disappears when not renewed. */
  leaseTtlSeconds: number;
  /** Seconds between full resyncs. */
  resyncIntervalSeconds: number;
  /** For tests: the clock that stamps `updated_at`. */
  now?: () => Date;
  /** Where optional fields come from (`[ogygia.nebula] cert_file`, ...). */
  sources?: LocalSources;
}

/** Failures the loop retries: the fleet adapters report every backend failure as one of these. */
function isBackendFailure(err: unknown): err is OgygiaError {
  return (
    err instanceof OgygiaError &&
    (err.code === "ERR_OGYGIA_FLEET_CONNECT" ||
      err.code === "ERR_OGYGIA_FLEET_WRITE" ||
      err.code === "ERR_OGYGIA_FLEET_READ")
  );
}

/** Runs until `stop`; see the module comment. */
export class PublishDaemon {
  private readonly publisher: FleetPublisher;
  private readonly root: string;
  private readonly log: DaemonLogger;
  private readonly now: () => Date;
  private readonly keepaliveMs: number;
  private readonly resyncMs: number;
  private readonly backoff: Backoff;
  private readonly watcher: StateLinkWatcher;
  private readonly stopping = new AbortController();
  private readonly startedAt: string;
  private readonly sources: LocalSources;

  /** The local state may differ from what was last published. */
  private dirty = true;
  /** Read the host's keys back before trusting `stored` (at start, after failures). */
  private resyncDue = true;
  /** `alive` is believed to be in place and tied to this publisher. */
  private aliveHeld = false;
  /** What the backend is believed to hold for this host. */
  private stored = new Map<StoredField, string>();
  private nextKeepalive = 0;
  private nextResync = 0;
  private wake: (() => void) | undefined;
  private publications = 0;

  constructor(options: DaemonOptions) {
    this.publisher = options.publisher;
    this.root = options.root;
    this.sources = options.sources ?? {};
    this.log = options.log;
    this.now = options.now ?? (() => new Date());
    this.startedAt = this.now().toISOString();
    // Renew three times per TTL, as etcd's own clients do: two renewals can
    // fail before the entry is lost.
    this.keepaliveMs = (options.leaseTtlSeconds * 1000) / 3;
    this.resyncMs = options.resyncIntervalSeconds * 1000;
    // Never wait longer than a renewal period between retries: a transient
    // failure must not cost the lease.
    this.backoff = new Backoff({
      initialMs: Math.min(250, this.keepaliveMs),
      maxMs: Math.min(15_000, this.keepaliveMs),
    });
    this.watcher = new StateLinkWatcher(options.root, {
      onChange: () => {
        this.log.debug({}, "state link changed");
        this.markDirty();
      },
      onProblem: (message) => {
        this.log.warn({ problem: message }, "cannot watch a state link folder; relying on resync");
      },
    });
    this.publisher.onLivenessLost((reason) => {
      this.log.warn({ reason }, "liveness lost; re-creating alive");
      this.aliveHeld = false;
      this.resyncDue = true;
      this.wakeUp();
    });
  }

  /** Asks for a publication as soon as possible (a state link changed). */
  markDirty(): void {
    this.dirty = true;
    this.wakeUp();
  }

  /** Ends `run` soon: the current backend call is abandoned, no new one starts. */
  stop(): void {
    this.stopping.abort();
    this.wakeUp();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /**
   * Publishes until `stop`, then revokes liveness (the host shows offline
   * at once) and releases the backend. Rejects only for a bug; backend
   * failures are logged and retried.
   */
  async run(): Promise<void> {
    this.log.info(
      {
        backend: this.publisher.kind,
        namespace: this.publisher.config.namespace,
        key: `${this.publisher.config.namespace}/${this.publisher.host}/`,
        root: this.root,
      },
      "publisher starting",
    );
    try {
      await this.watcher.ensure();
      while (!this.stopped) {
        try {
          await this.untilStopped(this.step());
          if (this.backoff.attempts > 0) this.log.info({}, "backend reachable again");
          this.backoff.reset();
        } catch (err) {
          if (!isBackendFailure(err)) throw err;
          // Whatever happened, trust nothing until the keys are read back
          // and liveness is confirmed.
          this.resyncDue = true;
          this.dirty = true;
          this.nextKeepalive = 0;
          const waitMs = this.backoff.next();
          this.log.warn(
            { error: errorMessage(err), attempt: this.backoff.attempts, retryInMs: waitMs },
            "backend call failed; retrying",
          );
          await delay(waitMs, this.stopping.signal);
          continue;
        }
        await this.sleepUntilDue();
      }
    } finally {
      this.watcher.close();
      await this.shutDown();
    }
  }

  /** Settles like `work`, or resolves as soon as `stop` is called. */
  private async untilStopped(work: Promise<void>): Promise<void> {
    if (this.stopped) return;
    const { signal } = this.stopping;
    let onAbort: (() => void) | undefined;
    const stopped = new Promise<void>((resolve) => {
      onAbort = resolve;
      signal.addEventListener("abort", onAbort, { once: true });
    });
    // An abandoned call may still fail later; that is expected and ignored.
    work.catch(() => undefined);
    try {
      await Promise.race([work, stopped]);
    } finally {
      if (onAbort) signal.removeEventListener("abort", onAbort);
    }
  }

  /** One round: whatever is due, in an order that keeps `alive` honest. */
  private async step(): Promise<void> {
    const started = Date.now();
    if (this.aliveHeld && started >= this.nextKeepalive) {
      this.aliveHeld = await this.publisher.refreshAlive();
      this.nextKeepalive = started + this.keepaliveMs;
      if (!this.aliveHeld) {
        this.log.warn({}, "liveness lost (lease or session gone); re-creating alive");
        // Whatever removed the lease may have removed the keys too.
        this.resyncDue = true;
      }
    }
    if (this.resyncDue || started >= this.nextResync) {
      // A watch started late may have missed changes.
      if (await this.watcher.ensure()) this.dirty = true;
      const values = await this.publisher.readHost();
      this.stored = storedValues(values);
      if (this.aliveHeld && !values.has("alive")) {
        this.log.warn({}, "alive was removed; re-creating it");
        this.aliveHeld = false;
      }
      this.resyncDue = false;
      this.nextResync = started + this.resyncMs;
      // A resync always confirms the state, refreshing updated_at.
      this.dirty = true;
    }
    if (this.dirty) {
      // Cleared before reading: a change during the read or the write marks it again.
      this.dirty = false;
      await this.publish();
    }
    if (!this.aliveHeld) {
      await this.publisher.ensureAlive(this.startedAt);
      this.aliveHeld = true;
      this.nextKeepalive = Date.now() + this.keepaliveMs;
      this.log.info({ leaseTtlSeconds: (this.keepaliveMs * 3) / 1000 }, "alive");
    }
  }

  private async publish(): Promise<void> {
    const local = await readLocalPublication(this.root, this.sources);
    for (const problem of local.problems) {
      this.log.warn({ problem }, "state unreadable; publishing it as unknown");
    }
    const plan = planPublication(this.stored, local.values, this.now().toISOString());
    await this.publisher.write(plan.changes);
    this.stored = applyChanges(this.stored, plan.changes);
    this.publications += 1;
    const fields = Object.fromEntries(plan.fields.map((f) => [f.field, f.value]));
    if (changesState(plan) || this.publications === 1) {
      this.log.info(
        {
          ...fields,
          written: [...plan.changes.put.keys()],
          deleted: plan.changes.delete,
        },
        "published",
      );
    } else {
      this.log.debug({ updated_at: fields.updated_at }, "confirmed");
    }
  }

  /** Sleeps until renewal or resync is due, a state link changes, or `stop`. */
  private async sleepUntilDue(): Promise<void> {
    if (this.stopped || this.dirty || this.resyncDue || !this.aliveHeld) return;
    const waitMs = Math.max(0, Math.min(this.nextKeepalive, this.nextResync) - Date.now());
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.wake = done;
    });
  }

  private async shutDown(): Promise<void> {
    try {
      await this.publisher.close({ revoke: true });
      this.log.info({}, "publisher stopped; alive revoked");
    } catch (err) {
      if (!isBackendFailure(err)) throw err;
      this.log.warn(
        { error: errorMessage(err) },
        "could not revoke alive; it disappears when its lease or session times out",
      );
    }
  }
}
