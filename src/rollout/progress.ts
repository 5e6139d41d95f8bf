/**
 * Where a rollout stands, derived from its plan and the hosts' published
 * `update_*` fields (one read of the namespace): each host's state, the
 * failures against the budget, which waves are done and soaked, and
 * whether a host may start. Pure: `rollout status` and every agent compute
 * the same answer from the same snapshot, so no process decides for the
 * others and nothing needs electing.
 */

import type { FleetSnapshot, HostValues } from "../fleet/index.js";
import type { Plan } from "./plan.js";

/** The agent's published states (`update_state`). */
export const UPDATE_STATES = [
  "realising",
  "activating",
  "checking",
  "confirming",
  "confirmed",
  "rolling-back",
  "rolled-back",
  "failed",
  "skipped",
  "waiting-reboot-window",
  "rebooting",
  "rebooting-back",
] as const;

export type UpdateState = (typeof UPDATE_STATES)[number];

/** States in which a host is between starting and finishing an update. */
export const ACTIVE_STATES: ReadonlySet<UpdateState> = new Set([
  "realising",
  "activating",
  "checking",
  "confirming",
  "rolling-back",
  "rebooting",
  "rebooting-back",
]);

/** States that count against the failure budget. */
export const FAILED_STATES: ReadonlySet<UpdateState> = new Set(["rolled-back", "failed"]);

/** What a host published about its update. */
export interface HostUpdate {
  state: UpdateState | null;
  target: string | null;
  error: string | null;
  rollout: string | null;
  startedAt: string | null;
  changedAt: string | null;
  finishedAt: string | null;
}

const text = (values: HostValues | undefined, field: Parameters<HostValues["get"]>[0]) => {
  const raw = values?.get(field);
  if (raw === undefined) return null;
  const s = Buffer.from(raw).toString("utf8");
  return s.length > 4096 ? s.slice(0, 4096) : s;
};

/**
 * Decoded fields by host values: a snapshot replaces a host's values when
 * they change and keeps the same object otherwise, so an agent reading
 * every snapshot decodes only the hosts that changed.
 */
const decoded = new WeakMap<HostValues, HostUpdate>();

/** A host's `update_*` fields; an unknown state reads as null. */
export function hostUpdate(values: HostValues | undefined): HostUpdate {
  if (values === undefined) return decodeUpdate(values);
  let update = decoded.get(values);
  if (update === undefined) {
    update = decodeUpdate(values);
    decoded.set(values, update);
  }
  return update;
}

function decodeUpdate(values: HostValues | undefined): HostUpdate {
  const state = text(values, "update_state");
  return {
    state: (UPDATE_STATES as readonly string[]).includes(state ?? "")
      ? (state as UpdateState)
      : null,
    target: text(values, "update_target"),
    error: text(values, "update_error"),
    rollout: text(values, "update_rollout"),
    startedAt: text(values, "update_started_at"),
    changedAt: text(values, "update_changed_at"),
    finishedAt: text(values, "update_finished_at"),
  };
}

export type RolloutState = "running" | "paused" | "aborted" | "halted" | "completed";

/** A planned host's standing in this rollout. */
export interface HostProgress {
  host: string;
  wave: number;
  target: string;
  /** `pending` until the host's agent reports for this plan and target. */
  state: UpdateState | "pending";
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  online: boolean;
}

export interface WaveProgress {
  index: number;
  hosts: string[];
  /** Every host confirmed. */
  done: boolean;
  /** When the wave's soak ends (done waves only): its last confirmation plus the soak. */
  soakUntil: string | null;
}

export interface Progress {
  id: string;
  revision: string;
  state: RolloutState;
  failures: number;
  budget: number;
  concurrency: number;
  soakSeconds: number;
  /** The first wave not done, or null when all are. */
  currentWave: number | null;
  waves: WaveProgress[];
  hosts: HostProgress[];
}

/** The rollout's standing from its plan and a snapshot of the namespace. */
export function progressOf(plan: Plan, snapshot: FleetSnapshot): Progress {
  const hosts: HostProgress[] = [];
  const waves: WaveProgress[] = [];
  let failures = 0;
  plan.waves.forEach((names, index) => {
    let done = true;
    let last = 0;
    for (const host of names) {
      const target = plan.hosts[host] ?? "";
      const values = snapshot.hosts.get(host);
      const update = hostUpdate(values);
      const ours = update.rollout === plan.id && update.target === target && update.state !== null;
      const state = ours ? (update.state ?? "pending") : "pending";
      if (state !== "confirmed") {
        done = false;
      } else {
        // A confirmation whose time has not arrived yet (ZooKeeper delivers a
        // host's keys one by one) cannot start the soak: the wave waits for it.
        const finished = Date.parse(update.finishedAt ?? "");
        if (Number.isNaN(finished)) done = false;
        else last = Math.max(last, finished);
      }
      if (FAILED_STATES.has(state as UpdateState)) failures += 1;
      hosts.push({
        host,
        wave: index,
        target,
        state,
        error: ours ? update.error : null,
        startedAt: ours ? update.startedAt : null,
        finishedAt: ours ? update.finishedAt : null,
        online: values?.has("alive") ?? false,
      });
    }
    waves.push({
      index,
      hosts: [...names],
      done,
      soakUntil: done ? new Date(last + plan.soakSeconds * 1000).toISOString() : null,
    });
  });
  const firstOpen = waves.findIndex((w) => !w.done);
  let state: RolloutState = plan.state;
  if (plan.state === "running") {
    if (failures >= plan.budget) state = "halted";
    else if (firstOpen === -1) state = "completed";
  }
  return {
    id: plan.id,
    revision: plan.revision,
    state,
    failures,
    budget: plan.budget,
    concurrency: plan.concurrency,
    soakSeconds: plan.soakSeconds,
    currentWave: firstOpen === -1 ? null : firstOpen,
    waves,
    hosts,
  };
}

/**
 * Whether every host of the waves before `host`'s reports `confirmed` (with
 * its finish time) for this plan: what `mayStart` needs first, answered
 * without the whole fleet's progress, stopping at the first host that is
 * not. False says `host` may not start; true says `progressOf` decides.
 */
export function earlierWavesConfirmed(plan: Plan, snapshot: FleetSnapshot, host: string): boolean {
  for (const names of plan.waves) {
    if (names.includes(host)) return true;
    for (const name of names) {
      const update = hostUpdate(snapshot.hosts.get(name));
      if (
        update.state !== "confirmed" ||
        update.rollout !== plan.id ||
        update.target !== (plan.hosts[name] ?? "") ||
        update.finishedAt === null
      ) {
        return false;
      }
    }
  }
  return false;
}

/**
 * Whether `host` may start its update now: the rollout runs, and every
 * earlier wave is done and soaked. `waitMs` says when to look again when
 * only a soak stands in the way.
 */
export function mayStart(
  progress: Progress,
  host: string,
  now: number,
): { ok: true } | { ok: false; reason: string; waitMs?: number } {
  if (progress.state !== "running") return { ok: false, reason: `rollout ${progress.state}` };
  const wave = progress.hosts.find((h) => h.host === host)?.wave ?? -1;
  if (wave < 0) return { ok: false, reason: "not in the plan" };
  for (const earlier of progress.waves.slice(0, wave)) {
    if (!earlier.done) return { ok: false, reason: `wave ${earlier.index + 1} not done` };
    const until = Date.parse(earlier.soakUntil ?? "");
    if (now < until) {
      return { ok: false, reason: `wave ${earlier.index + 1} soaking`, waitMs: until - now };
    }
  }
  return { ok: true };
}
