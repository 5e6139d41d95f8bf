/**
 * The operator's side: `ogygia rollout start|status|pause|resume|abort`.
 * Each returns plain data; `render.ts` turns it into lines.
 */

import { readFile } from "node:fs/promises";

import { OgygiaError, hasErrorCode } from "../core/index.js";
import type { Coordinator, FleetBackend } from "../fleet/index.js";
import {
  encodePlan,
  makePlan,
  parseRelease,
  type Plan,
  type PlanOptions,
  type Release,
} from "./plan.js";
import { progressOf, type Progress } from "./progress.js";
import { planKey, readPlan, rolloutPrefix, updatePlan } from "./store.js";

export interface Fleet {
  coordinator: Coordinator;
  backend: FleetBackend;
  namespace: string;
}

/** Reads and checks a release file. */
export async function readRelease(file: string): Promise<Release> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT")) {
      throw new OgygiaError("ERR_OGYGIA_ROLLOUT", `release file ${file} does not exist`);
    }
    throw err;
  }
  return parseRelease(text, file);
}

/**
 * Writes a new plan. A rollout still running or paused is replaced only
 * with `replace` (its hosts then follow the new plan).
 */
export async function startRollout(
  fleet: Fleet,
  release: Release,
  options: PlanOptions & { replace: boolean },
): Promise<Progress> {
  const prefix = rolloutPrefix(fleet.namespace);
  const plan = makePlan(release, options);
  const existing = await readPlan(fleet.coordinator, prefix);
  if (existing) {
    const progress = progressOf(existing.plan, await fleet.backend.readHosts());
    if (!options.replace && (progress.state === "running" || progress.state === "paused")) {
      throw new OgygiaError(
        "ERR_OGYGIA_ROLLOUT",
        `rollout ${existing.plan.id} is ${progress.state} (${planKey(prefix)})`,
        { hint: "abort it first, or pass --replace" },
      );
    }
  }
  const result = await fleet.coordinator.compareAndSet(
    planKey(prefix),
    existing ? { version: existing.version } : "absent",
    encodePlan(plan),
  );
  if (!result.won) {
    throw new OgygiaError(
      "ERR_OGYGIA_ROLLOUT",
      `another rollout was started at ${planKey(prefix)} meanwhile`,
      {
        hint: "check `ogygia rollout status`",
      },
    );
  }
  return progressOf(plan, await fleet.backend.readHosts());
}

/** The rollout's standing, or null when none was started. */
export async function rolloutStatus(fleet: Fleet): Promise<Progress | null> {
  const [read, snapshot] = await Promise.all([
    readPlan(fleet.coordinator, rolloutPrefix(fleet.namespace)),
    fleet.backend.readHosts(),
  ]);
  return read ? progressOf(read.plan, snapshot) : null;
}

/**
 * Sets the plan's state. `resume` may bring a fixed release: its hosts'
 * paths replace the plan's (a host whose path changed is pending again, so
 * its earlier failure no longer counts against the budget).
 */
export async function setRolloutState(
  fleet: Fleet,
  state: Plan["state"],
  options: { release?: Release; budget?: number } = {},
): Promise<Progress> {
  const plan = await updatePlan(fleet.coordinator, rolloutPrefix(fleet.namespace), (plan) => {
    if (plan.state === "aborted" && state !== "aborted") {
      throw new OgygiaError("ERR_OGYGIA_ROLLOUT", `rollout ${plan.id} was aborted`, {
        hint: "start a new one with `ogygia rollout start`",
      });
    }
    const hosts = { ...plan.hosts };
    for (const [host, system] of Object.entries(options.release?.hosts ?? {})) {
      if (host in hosts) hosts[host] = system;
    }
    return {
      ...plan,
      hosts,
      revision: options.release?.revision ?? plan.revision,
      budget: options.budget ?? plan.budget,
      state,
      changedAt: new Date().toISOString(),
    };
  });
  return progressOf(plan, await fleet.backend.readHosts());
}
