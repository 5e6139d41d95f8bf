/**
 * The rollout's keys in the fleet store, through the coordination
 * interface (compare-and-swap on etcd's mod_revision / ZooKeeper's mzxid).
 *
 * Beside the namespace, never inside it, so that readers of
 * `<namespace>/<host>/<field>` see no extra "host":
 *   <prefix>/plan                  the plan (JSON, `plan.ts`), one per fleet
 *   <prefix>/failed/<store name>   a system path that failed on a host (JSON: host, reason)
 *   <prefix>/slots/<n>             the concurrency slots: locks tied to agents' leases
 * where `<prefix>` is `<parent of namespace>/rollout/<last segment of namespace>`
 * (`/nixos/versions` → `/nixos/rollout/versions`).
 * Each host's own progress is in its namespace, as published fields
 * (`<namespace>/<host>/update_*`), written by its agent only.
 */

import path from "node:path";

import { OgygiaError } from "../core/index.js";
import { fieldKey, type Coordinator, type UpdateField } from "../fleet/index.js";
import { encodePlan, parsePlan, type Plan } from "./plan.js";

/** The rollout keys' prefix for a fleet namespace. */
export function rolloutPrefix(namespace: string): string {
  const parent = path.posix.dirname(namespace);
  return `${parent === "/" ? "" : parent}/rollout/${path.posix.basename(namespace)}`;
}

export const planKey = (prefix: string): string => `${prefix}/plan`;
export const failedKey = (prefix: string, system: string): string =>
  `${prefix}/failed/${path.posix.basename(system)}`;
export const slotKey = (prefix: string, n: number): string => `${prefix}/slots/${n}`;

/** The plan and its version, or null when no rollout was started. */
export async function readPlan(
  coordinator: Coordinator,
  prefix: string,
  timeoutMs?: number,
): Promise<{ plan: Plan; version: bigint } | null> {
  const key = planKey(prefix);
  const { entry } = await coordinator.get(key, timeoutMs === undefined ? {} : { timeoutMs });
  return entry ? { plan: parsePlan(entry.value, key), version: entry.version } : null;
}

/**
 * Changes the plan with compare-and-swap: `change` gets the stored plan and
 * returns the new one; retried when another writer got there first.
 */
export async function updatePlan(
  coordinator: Coordinator,
  prefix: string,
  change: (plan: Plan) => Plan,
): Promise<Plan> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const read = await readPlan(coordinator, prefix);
    if (!read) {
      throw new OgygiaError("ERR_OGYGIA_ROLLOUT", `no rollout at ${planKey(prefix)}`, {
        hint: "start one with `ogygia rollout start RELEASE.json`",
      });
    }
    const next = change(read.plan);
    const result = await coordinator.compareAndSet(
      planKey(prefix),
      { version: read.version },
      encodePlan(next),
    );
    if (result.won) return next;
  }
  throw new OgygiaError("ERR_OGYGIA_ROLLOUT", `the plan at ${planKey(prefix)} kept changing`, {
    hint: "try again",
  });
}

/** Records that `system` failed on `host`; false when another host recorded it first. */
export async function recordFailedPath(
  coordinator: Coordinator,
  prefix: string,
  system: string,
  record: { host: string; reason: string; at: string },
): Promise<boolean> {
  const result = await coordinator.compareAndSet(
    failedKey(prefix, system),
    "absent",
    Buffer.from(JSON.stringify(record)),
  );
  return result.won;
}

/** Who failed with `system`, or null when nobody did. */
export async function failedPathRecord(
  coordinator: Coordinator,
  prefix: string,
  system: string,
): Promise<{ host: string; reason: string } | null> {
  const { entry } = await coordinator.get(failedKey(prefix, system));
  if (!entry) return null;
  try {
    const data = JSON.parse(Buffer.from(entry.value).toString("utf8")) as {
      host?: unknown;
      reason?: unknown;
    };
    return {
      host: typeof data.host === "string" ? data.host : "?",
      reason: typeof data.reason === "string" ? data.reason : "",
    };
  } catch {
    return { host: "?", reason: "unreadable record" };
  }
}

/**
 * Writes one host's `update_*` fields with compare-and-swap, remembering
 * each key's version from its own writes (the agent is their only writer),
 * and reading again when a write finds another version.
 */
export class HostFieldWriter {
  private readonly versions = new Map<UpdateField, bigint | "absent">();
  private readonly last = new Map<UpdateField, string | null>();

  constructor(
    private readonly coordinator: Coordinator,
    private readonly namespace: string,
    private readonly host: string,
  ) {}

  /** Sets fields (null deletes); unchanged values are not written again. */
  async write(fields: Partial<Record<UpdateField, string | null>>): Promise<void> {
    // The state last, so that a reader never sees a new state with old details.
    // The details are written together (one round trip's wait, not one each).
    const entries = (Object.entries(fields) as [UpdateField, string | null][]).filter(
      ([field, value]) => !(this.last.has(field) && this.last.get(field) === value),
    );
    const details = entries.filter(([field]) => field !== "update_state");
    const state = entries.filter(([field]) => field === "update_state");
    for (const group of [details, state]) {
      await Promise.all(
        group.map(async ([field, value]) => {
          // Forgotten while written: a write that failed is made again next time.
          this.last.delete(field);
          await this.writeOne(field, value);
          this.last.set(field, value);
        }),
      );
    }
  }

  private async writeOne(field: UpdateField, value: string | null): Promise<void> {
    const key = fieldKey(this.namespace, this.host, field);
    for (let attempt = 0; attempt < 5; attempt++) {
      let version = this.versions.get(field);
      if (version === undefined) {
        const { entry } = await this.coordinator.get(key);
        version = entry ? entry.version : "absent";
      }
      if (value === null) {
        if (version === "absent") return;
        const gone = await this.coordinator.compareAndDelete(key, { version });
        this.versions.set(field, "absent");
        if (gone) return;
        this.versions.delete(field);
        continue;
      }
      const result = await this.coordinator.compareAndSet(
        key,
        version === "absent" ? "absent" : { version },
        Buffer.from(value),
      );
      if (result.won) {
        this.versions.set(field, result.version);
        return;
      }
      this.versions.delete(field);
    }
    throw new OgygiaError("ERR_OGYGIA_FLEET_WRITE", `${key} kept changing under this agent`, {
      hint: "is another `ogygia update` running for this host?",
    });
  }
}
