/**
 * The host agent (`ogygia update`): waits for its host's turn in the
 * rollout, then realises the system path, records what ran before,
 * activates (`switch-to-configuration test`), checks health within the
 * deadline, and either confirms (profile set, `switch-to-configuration
 * boot`) or rolls back (`switch-to-configuration switch` of the previous
 * system, profile reset). Each step is written to disk before it is taken
 * (`state-file.ts`), so that a restart after a crash or reboot finishes a
 * confirmation or rolls back, never leaving a half state; and published as
 * the host's `update_*` fields, which the other agents read to know when
 * their wave may start.
 */

import { setTimeout as delay } from "node:timers/promises";

import { errorMessage } from "../core/index.js";
import type {
  Coordinator,
  FleetBackend,
  FleetSnapshot,
  Lease,
  UpdateField,
} from "../fleet/index.js";
import { waitHealthy } from "./health.js";
import { realise, setSystemProfile, switchTo, systemOf } from "./host-system.js";
import { parsePlan, waveOf, type Plan } from "./plan.js";
import {
  ACTIVE_STATES,
  earlierWavesConfirmed,
  mayStart,
  progressOf,
  type Progress,
  type UpdateState,
} from "./progress.js";
import {
  bootLinksChanged,
  mayRebootNow,
  msUntilWindow,
  triggerReboot,
  type RebootSettings,
} from "./reboot.js";
import { loadRecord, saveRecord, type AgentRecord } from "./state-file.js";
import {
  HostFieldWriter,
  failedPathRecord,
  readPlan,
  recordFailedPath,
  rolloutPrefix,
  planKey,
  slotKey,
} from "./store.js";

/** `[ogygia.update]`, as the agent uses it. */
export interface UpdateSettings {
  /** The state folder, resolved on this machine. */
  stateDir: string;
  substituters: string[];
  trustedPublicKeys: string[];
  probes: string[];
  httpProbes: string[];
  checkUnits: boolean;
  healthDeadlineSeconds: number;
  activationTimeoutSeconds: number;
  pollIntervalMs: number;
  /** What to do with a release that needs a reboot (default: never reboot). */
  reboot?: RebootSettings;
}

export interface AgentOptions {
  host: string;
  root: string;
  namespace: string;
  coordinator: Coordinator;
  backend: FleetBackend;
  settings: UpdateSettings;
  /** TTL of the lease that holds the agent's concurrency slot. */
  leaseTtlMs: number;
  /** Throws unless the fleet store answers with the configuration the running system carries. */
  reachBackend: () => Promise<void>;
  log: (line: string) => void;
  signal: AbortSignal;
  /** Return once this host has finished (confirmed, rolled back, failed or skipped) in a rollout. */
  once?: boolean;
}

const TERMINAL: ReadonlySet<UpdateState> = new Set([
  "confirmed",
  "rolled-back",
  "failed",
  "skipped",
]);

/**
 * States whose record reaches the disk (fsync) before their step: the steps
 * that change what the host boots (the profile, the boot default, a
 * reboot). Other records are written atomically but not synced: across a
 * power loss their steps are undone anyway (the host boots its boot
 * default, still the previous system), and the older record on disk leads
 * the recovery to the same place (an update started again, or rolled back).
 * A synced write waits on the disk behind every other write of the machine:
 * one per step made every update wait for the disk five times.
 */
const DURABLE: ReadonlySet<UpdateState> = new Set([
  "confirming",
  "rebooting",
  "rolling-back",
  "rebooting-back",
]);

const nowIso = (): string => new Date().toISOString();

/** How often the plan is read while its watch runs (a safety net only). */
const PLAN_REREAD_MS = 30_000;

/**
 * Reboots back to the previous system one update may make. A bootloader
 * that keeps booting the new system would otherwise have the host reboot
 * forever; past this the update fails and the host is left to the operator.
 */
export const MAX_REBOOTS_BACK = 3;

/** Runs the agent until `signal` aborts (or, with `once`, its host is done). */
export async function runAgent(options: AgentOptions): Promise<AgentRecord | null> {
  return new Agent(options).run();
}

class Agent {
  private readonly prefix: string;
  private readonly writer: HostFieldWriter;
  private snapshot: FleetSnapshot | undefined;
  private record: AgentRecord | null;
  private published = false;
  /** The publication in flight, if any; `publishAgain` when the record changed since it began. */
  private publishing: Promise<void> | undefined;
  private publishAgain = false;
  private wake: (() => void) | undefined;
  /** The plan's key is being watched: the plan is read again when it changes. */
  private planWatched = false;
  /** The plan and target for which the host was seen not running the target already. */
  private runningChecked: string | undefined;
  /** Set by a change that came while the agent was busy: the next sleep returns at once. */
  private woken = false;
  private lease: Lease | undefined;
  /** The plan as last read, and when: snapshot changes reuse it, the poll reads it again. */
  private plan: { plan: Plan; at: number } | null = null;
  /** Releases the concurrency slot this update holds, if any. */
  private releaseSlot: (() => Promise<void>) | undefined;

  constructor(private readonly o: AgentOptions) {
    this.prefix = rolloutPrefix(o.namespace);
    this.writer = new HostFieldWriter(o.coordinator, o.namespace, o.host);
    this.record = loadRecord(o.settings.stateDir);
  }

  async run(): Promise<AgentRecord | null> {
    // An update the agent was in the middle of: finished or rolled back
    // first, with no need of the fleet store.
    await this.recover();
    const planWatch = this.watchPlan();
    const watch = this.o.backend.watchHosts({
      onSnapshot: (snapshot) => {
        this.snapshot = snapshot;
        this.poke();
      },
      onError: (err) => {
        this.o.log(`fleet read failed: ${errorMessage(err)}`);
      },
    });
    try {
      while (!this.o.signal.aborted) {
        try {
          const finished = await this.step();
          if (finished && this.o.once === true) {
            await this.publishing;
            if (this.published) return this.record;
          }
        } catch (err) {
          this.o.log(`update step failed: ${errorMessage(err)}`);
        }
        await this.sleep(this.o.settings.pollIntervalMs);
      }
      return this.record;
    } finally {
      await this.publishing;
      planWatch.abort();
      await watch.close();
      if (this.lease) await this.lease.revoke().catch(() => undefined);
    }
  }

  private poke(): void {
    if (this.wake) this.wake();
    else this.woken = true;
  }

  /**
   * Follows the plan's key, so that a new, resumed or paused plan is read at
   * once rather than on the next poll (which stays, for a watch that broke).
   */
  private watchPlan(): AbortController {
    const stop = new AbortController();
    const key = planKey(this.prefix);
    const follow = async (): Promise<void> => {
      while (!stop.signal.aborted && !this.o.signal.aborted) {
        try {
          const { entry } = await this.o.coordinator.get(key);
          const after = entry?.version ?? 0n;
          this.planWatched = true;
          // What the watch may have missed before it started.
          this.plan = null;
          this.poke();
          for await (const event of this.o.coordinator.watch(key, {
            after,
            signal: stop.signal,
          })) {
            // The new plan is in the event: no read of it by every agent at once.
            this.plan =
              event.type === "put" ? { plan: parsePlan(event.value, key), at: Date.now() } : null;
            this.poke();
          }
        } catch {
          // The store is away: the poll reads the plan meanwhile; watch again later.
        }
        this.planWatched = false;
        await delay(this.o.settings.pollIntervalMs, undefined, { signal: stop.signal }).catch(
          () => undefined,
        );
      }
    };
    void follow();
    return stop;
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.o.signal.removeEventListener("abort", done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
      this.o.signal.addEventListener("abort", done);
    });
  }

  private inProgress(): boolean {
    return this.record !== null && ACTIVE_STATES.has(this.record.state);
  }

  /** One look at the plan; true when this host is done with the current rollout. */
  private async step(): Promise<boolean> {
    // An update left between two states (a step threw): finished or rolled
    // back as after a crash, never started again over it.
    if (this.inProgress()) {
      await this.recover();
      if (this.inProgress()) return false;
    }
    if (!this.published && this.record) await this.schedulePublish();
    // Read again on the plan watch's news, or on the poll while the watch is down.
    const stale = this.planWatched ? PLAN_REREAD_MS : this.o.settings.pollIntervalMs;
    if (!this.plan || Date.now() - this.plan.at >= stale) {
      const read = await readPlan(this.o.coordinator, this.prefix);
      this.plan = read && { plan: read.plan, at: Date.now() };
    }
    if (!this.plan) return false;
    const { plan } = this.plan;
    const target = plan.hosts[this.o.host];
    if (target === undefined || waveOf(plan, this.o.host) < 0) return false;
    const rec = this.record;
    if (rec?.rollout === plan.id && rec.target === target && TERMINAL.has(rec.state)) {
      return true;
    }
    if (this.snapshot === undefined) return false;
    // Already running the target (looked at once per plan and target: nothing
    // else changes the host's system while the agent waits).
    const seen = `${plan.id} ${target}`;
    if (
      this.runningChecked !== seen &&
      systemOf(this.o.root, "current") === target &&
      systemOf(this.o.root, "nextboot") === target
    ) {
      const at = nowIso();
      await this.transition({
        state: "confirmed",
        rollout: plan.id,
        target,
        previous: target,
        previousProfile: target,
        error: null,
        startedAt: at,
        changedAt: at,
        finishedAt: at,
      });
      return true;
    }
    this.runningChecked = seen;
    // Most waiting hosts stop here, at the first unconfirmed host of an earlier wave.
    if (!earlierWavesConfirmed(plan, this.snapshot, this.o.host)) return false;
    const progress = progressOf(plan, this.snapshot);
    const may = mayStart(progress, this.o.host, Date.now());
    if (!may.ok) return false;
    // Waiting for the reboot window: no slot is taken before it opens.
    if (
      rec?.state === "waiting-reboot-window" &&
      rec.rollout === plan.id &&
      rec.target === target &&
      !mayRebootNow(this.rebootSettings, new Date())
    ) {
      return false;
    }
    // All slots visibly taken: no lock requests until a host finishes.
    const active = progress.hosts.filter((h) => ACTIVE_STATES.has(h.state as UpdateState)).length;
    if (active >= plan.concurrency) return false;
    const failed = await failedPathRecord(this.o.coordinator, this.prefix, target);
    if (failed) {
      const at = nowIso();
      await this.transition({
        state: "skipped",
        rollout: plan.id,
        target,
        previous: systemOf(this.o.root, "current"),
        previousProfile: systemOf(this.o.root, "nextboot"),
        error: `not tried: ${target} failed on ${failed.host} (${failed.reason})`,
        startedAt: at,
        changedAt: at,
        finishedAt: at,
      });
      return true;
    }
    const release = await this.takeSlot(plan, progress, plan.concurrency - active);
    if (!release) return false;
    this.releaseSlot = release;
    try {
      await this.update(plan, target);
    } finally {
      await this.freeSlot();
    }
    return true;
  }

  /**
   * Takes a concurrency slot, or null while none is free for this host.
   * First its own slot, `(place in its wave) mod concurrency`, so that the
   * hosts of a wave queue on the slots evenly and a host is never passed
   * over for good; then, when the snapshot shows `free` slots unused and
   * this host is among the first `free` hosts of its wave still pending,
   * any other slot, so that a free slot does not stay idle while the host
   * queued on a busy one waits. Only those few hosts try the other slots:
   * a slot set free is not raced for by every waiting host.
   */
  private async takeSlot(
    plan: Plan,
    progress: Progress,
    free: number,
  ): Promise<(() => Promise<void>) | null> {
    if (!this.lease || this.lease.lost.aborted) {
      this.lease = await this.o.coordinator.grantLease({ ttlMs: this.o.leaseTtlMs });
    }
    const lease = this.lease;
    const waveIndex = waveOf(plan, this.o.host);
    const wave = plan.waves[waveIndex] ?? [];
    const place = Math.max(0, wave.indexOf(this.o.host));
    const own = place % plan.concurrency;
    const attempt = async (n: number): Promise<(() => Promise<void>) | null> => {
      const lock = await this.o.coordinator.tryAcquireLock(slotKey(this.prefix, n), {
        holder: this.o.host,
        lease,
      });
      if (!lock) return null;
      return async () => {
        await lock.release().catch(() => false);
      };
    };
    const mine = await attempt(own);
    if (mine) return mine;
    const queue = progress.hosts.filter((h) => h.wave === waveIndex && h.state === "pending");
    const rank = queue.findIndex((h) => h.host === this.o.host);
    if (rank < 0 || rank >= free) return null;
    for (let i = 1; i < plan.concurrency; i++) {
      const taken = await attempt((own + rank + i) % plan.concurrency);
      if (taken) return taken;
    }
    return null;
  }

  private async freeSlot(): Promise<void> {
    const release = this.releaseSlot;
    this.releaseSlot = undefined;
    if (release) await release();
  }

  /**
   * Saves the record, then publishes it in the background (best effort: the
   * store may be down): the next step does not wait for the fleet store.
   */
  private async transition(record: AgentRecord): Promise<void> {
    this.record = record;
    const t0 = performance.now();
    await saveRecord(this.o.settings.stateDir, record, { durable: DURABLE.has(record.state) });
    if (process.env.TRACE_SAVE)
      process.stderr.write(`SAVE ${(performance.now() - t0).toFixed(1)}\n`);
    // Finished (its time taken above): the slot is free before the state is
    // published, so that the host queued on it finds it free when it reads the state.
    if (TERMINAL.has(record.state)) await this.freeSlot();
    this.published = false;
    this.o.log(
      `${record.state} ${record.target}${record.error === null ? "" : `: ${record.error}`}`,
    );
    void this.schedulePublish();
  }

  /**
   * Publishes the record as it stands, one publication at a time (the
   * writer's versions need it); a record that changes meanwhile is
   * published when the one in flight ends, so states passed through
   * quickly may never be seen, and the latest always is. Resolves when
   * nothing is left to publish.
   */
  private changedSincePublish(): boolean {
    return this.publishAgain;
  }

  private schedulePublish(): Promise<void> {
    if (this.publishing) {
      this.publishAgain = true;
      return this.publishing;
    }
    const run = async (): Promise<void> => {
      do {
        this.publishAgain = false;
        await this.publish();
      } while (this.changedSincePublish());
    };
    this.publishing = run().finally(() => {
      this.publishing = undefined;
    });
    return this.publishing;
  }

  private async publish(): Promise<void> {
    const rec = this.record;
    if (!rec) return;
    const fields: Partial<Record<UpdateField, string | null>> = {
      update_target: rec.target,
      update_rollout: rec.rollout,
      update_error: rec.error,
      update_started_at: rec.startedAt,
      update_changed_at: rec.changedAt,
      update_finished_at: rec.finishedAt,
      update_state: rec.state,
    };
    try {
      await this.writer.write(fields);
      this.published = true;
    } catch (err) {
      this.o.log(`cannot publish the update state yet: ${errorMessage(err)}`);
    }
  }

  private next(state: UpdateState, extra: Partial<AgentRecord> = {}): AgentRecord {
    if (!this.record) throw new Error("no update in progress");
    const at = nowIso();
    return {
      ...this.record,
      ...extra,
      state,
      changedAt: at,
      finishedAt: TERMINAL.has(state) ? at : null,
    };
  }

  private async update(plan: Plan, target: string): Promise<void> {
    const at = nowIso();
    await this.transition({
      state: "realising",
      rollout: plan.id,
      target,
      previous: systemOf(this.o.root, "current"),
      previousProfile: systemOf(this.o.root, "nextboot"),
      error: null,
      startedAt: at,
      changedAt: at,
      finishedAt: null,
    });
    const timeoutMs = this.o.settings.activationTimeoutSeconds * 1000;
    try {
      await realise(target, {
        root: this.o.root,
        substituters: this.o.settings.substituters,
        trustedPublicKeys: this.o.settings.trustedPublicKeys,
        timeoutMs,
      });
    } catch (err) {
      const reason = errorMessage(err);
      await this.recordFailure(target, reason);
      await this.transition(this.next("failed", { error: reason }));
      return;
    }
    const links = await this.rebootLinks(target);
    if (links.length > 0 && this.rebootSettings.policy !== "never") {
      if (!mayRebootNow(this.rebootSettings, new Date())) {
        const wait = Math.round(msUntilWindow(this.rebootSettings.window, new Date()) / 60_000);
        this.o.log(
          `${links.join(", ")} changed: waiting for the reboot window ${this.rebootSettings.window} (in ${wait} min)`,
        );
        await this.transition(this.next("waiting-reboot-window"));
        return;
      }
      await this.rebootInto(target);
      return;
    }
    await this.transition(this.next("activating"));
    try {
      await switchTo(this.o.root, target, "test", timeoutMs);
    } catch (err) {
      await this.rollBack(errorMessage(err));
      return;
    }
    await this.transition(this.next("checking"));
    await this.checkAndFinish();
  }

  private async checkAndFinish(): Promise<void> {
    const unhealthy = await waitHealthy({
      root: this.o.root,
      reachBackend: this.o.reachBackend,
      checkUnits: this.o.settings.checkUnits,
      commands: this.o.settings.probes,
      http: this.o.settings.httpProbes,
      deadline: Date.now() + this.o.settings.healthDeadlineSeconds * 1000,
      intervalMs: Math.min(1000, this.o.settings.pollIntervalMs * 2),
    });
    if (unhealthy !== null) {
      await this.rollBack(`unhealthy: ${unhealthy}`);
      return;
    }
    await this.transition(this.next("confirming"));
    await this.confirm();
  }

  private async confirm(): Promise<void> {
    const rec = this.record;
    if (!rec) return;
    const timeoutMs = this.o.settings.activationTimeoutSeconds * 1000;
    await setSystemProfile(this.o.root, rec.target, timeoutMs);
    await switchTo(this.o.root, rec.target, "boot", timeoutMs);
    await this.transition(this.next("confirmed", { error: null }));
  }

  private get rebootSettings(): RebootSettings {
    return this.o.settings.reboot ?? { policy: "never", window: "", command: [] };
  }

  /** The boot links `target` changes against the booted system ([] when none, or unknown). */
  private async rebootLinks(target: string): Promise<string[]> {
    if (this.rebootSettings.policy === "never") return [];
    const booted = systemOf(this.o.root, "booted") ?? systemOf(this.o.root, "current");
    if (booted === null || booted === target) return [];
    try {
      return await bootLinksChanged(this.o.root, booted, target);
    } catch (err) {
      // Unknown: activated without a reboot, as with reboot = "never".
      this.o.log(`cannot compare the boot links of ${booted} and ${target}: ${errorMessage(err)}`);
      return [];
    }
  }

  /**
   * Makes `target` the boot default (profile set, `switch-to-configuration
   * boot`) and reboots into it; the confirmation is pending across the
   * reboot (`rebooting` on disk), and made after the boot by `afterReboot`.
   */
  private async rebootInto(target: string): Promise<void> {
    await this.transition(this.next("rebooting", { reboot: true }));
    const timeoutMs = this.o.settings.activationTimeoutSeconds * 1000;
    try {
      await setSystemProfile(this.o.root, target, timeoutMs);
      await switchTo(this.o.root, target, "boot", timeoutMs);
      await this.schedulePublish();
      await triggerReboot(this.o.root, this.rebootSettings.command, timeoutMs);
    } catch (err) {
      await this.rollBack(`cannot reboot into the new system: ${errorMessage(err)}`);
      return;
    }
    await this.awaitReboot();
  }

  /**
   * The reboot ends this process. If it has not come when the activation
   * timeout ends, what runs decides, as after a boot.
   */
  private async awaitReboot(): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.o.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, this.o.settings.activationTimeoutSeconds * 1000);
      this.o.signal.addEventListener("abort", done);
    });
    if (this.o.signal.aborted) return;
    const rec = this.record;
    if (rec?.state === "rebooting") await this.afterReboot();
    else if (rec?.state === "rebooting-back") await this.afterRebootBack();
  }

  /** After the reboot into the new system: its health decides, as after `test`. */
  private async afterReboot(): Promise<void> {
    const rec = this.record;
    if (!rec) return;
    if (systemOf(this.o.root, "booted") !== rec.target) {
      await this.rollBack("the host did not boot into the new system");
      return;
    }
    await this.transition(this.next("checking"));
    await this.checkAndFinish();
  }

  /** After the reboot back into the previous system. */
  private async afterRebootBack(): Promise<void> {
    const rec = this.record;
    if (!rec) return;
    if (rec.previous !== null && systemOf(this.o.root, "booted") !== rec.previous) {
      // Not back yet (the reboot did not happen): the rollback is made again.
      await this.rollBack(rec.error ?? "rollback interrupted");
      return;
    }
    const reason = rec.error ?? "rolled back";
    await this.recordFailure(rec.target, reason);
    await this.transition(this.next("rolled-back", { error: reason }));
  }

  private async rollBack(reason: string): Promise<void> {
    const rec = this.record;
    if (!rec) return;
    if (rec.state !== "rolling-back")
      await this.transition(this.next("rolling-back", { error: reason }));
    const timeoutMs = this.o.settings.activationTimeoutSeconds * 1000;
    if (rec.previous !== null) {
      // Only an update through a reboot may have booted the new system.
      const booted = rec.reboot === true ? systemOf(this.o.root, "booted") : rec.previous;
      if (booted !== rec.previous) {
        // Booted into the new system: back the same way, by a reboot.
        const rebootsBack = rec.rebootsBack ?? 0;
        if (rebootsBack >= MAX_REBOOTS_BACK) {
          // The boot default is already the previous system (each reboot back set it).
          const stuck =
            `${reason}; the host still boots ${booted ?? "an unknown system"} after ` +
            `${rebootsBack} reboots back to ${rec.previous}: not rebooting again ` +
            "(check the bootloader; its default is the previous system)";
          await this.recordFailure(rec.target, stuck);
          await this.transition(this.next("failed", { error: stuck }));
          return;
        }
        if (rec.previousProfile !== null) {
          await setSystemProfile(this.o.root, rec.previousProfile, timeoutMs);
        }
        await switchTo(this.o.root, rec.previous, "boot", timeoutMs);
        await this.recordFailure(rec.target, reason);
        await this.transition(
          this.next("rebooting-back", { error: reason, rebootsBack: rebootsBack + 1 }),
        );
        await this.schedulePublish();
        await triggerReboot(this.o.root, this.rebootSettings.command, timeoutMs);
        await this.awaitReboot();
        return;
      }
      await switchTo(this.o.root, rec.previous, "switch", timeoutMs);
      if (rec.previousProfile !== null) {
        await setSystemProfile(this.o.root, rec.previousProfile, timeoutMs);
      }
    }
    await this.recordFailure(rec.target, reason);
    await this.transition(this.next("rolled-back", { error: reason }));
  }

  private async recordFailure(target: string, reason: string): Promise<void> {
    try {
      await recordFailedPath(this.o.coordinator, this.prefix, target, {
        host: this.o.host,
        reason: reason.slice(0, 512),
        at: nowIso(),
      });
    } catch (err) {
      this.o.log(`cannot record the failed path yet: ${errorMessage(err)}`);
    }
  }

  /** Finishes what a previous run of the agent left in progress. */
  private async recover(): Promise<void> {
    const rec = this.record;
    if (!rec || !ACTIVE_STATES.has(rec.state)) return;
    this.o.log(`resuming after a stop in state ${rec.state}`);
    switch (rec.state) {
      case "realising":
        // Nothing was activated: the update starts again when its turn comes.
        this.record = null;
        return;
      case "activating":
      case "checking":
        await this.rollBack("the agent stopped before the update was confirmed");
        return;
      case "confirming":
        await this.confirm();
        return;
      case "rolling-back":
        await this.rollBack(rec.error ?? "rollback interrupted");
        return;
      case "rebooting":
        await this.afterReboot();
        return;
      case "rebooting-back":
        await this.afterRebootBack();
        return;
      case "confirmed":
      case "rolled-back":
      case "failed":
      case "skipped":
      case "waiting-reboot-window":
        return;
    }
  }
}
