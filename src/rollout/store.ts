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
import { fieldKey, rolloutPrefix, type Coordinator, type UpdateField } from "../fleet/index.js";
import { encodePlan, parsePlan, type Plan } from "./plan.js";

/** The rollout keys' prefix for a fleet namespace (kept in `src/fleet`: grants need it). */
export { rolloutPrefix };

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
 * Writes one host's `update_*` fields with compare-and-swap, all of a
 * record in one atomic write (`compareAndSetMany`: one etcd transaction, one
 * ZooKeeper multi), so that a reader never sees a new state with old
 * details, and a watcher gets one change per record. Each key's version is
 * remembered from the writer's own writes (the agent is their only writer);
 * keys are read again when a write finds another version.
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
    const entries = (Object.entries(fields) as [UpdateField, string | null][]).filter(
      ([field, value]) => !(this.last.has(field) && this.last.get(field) === value),
    );
    if (entries.length === 0) return;
    // Forgotten while written: a write that failed is made again next time.
    for (const [field] of entries) this.last.delete(field);
    for (let attempt = 0; attempt < 5; attempt++) {
      await Promise.all(
        entries.map(async ([field]) => {
          if (this.versions.has(field)) return;
          const { entry } = await this.coordinator.get(this.key(field));
          this.versions.set(field, entry ? entry.version : "absent");
        }),
      );
      // A delete of a key known to be absent is no change.
      const changes = entries.filter(
        ([field, value]) => !(value === null && this.versions.get(field) === "absent"),
      );
      if (changes.length > 0) {
        const result = await this.coordinator.compareAndSetMany(
          changes.map(([field, value]) => {
            const version = this.versions.get(field) ?? "absent";
            return {
              key: this.key(field),
              expected: version === "absent" ? "absent" : { version },
              value: value === null ? null : Buffer.from(value),
            };
          }),
        );
        if (!result.won) {
          // Another writer, or a version not known right: read them again.
          for (const [field] of changes) this.versions.delete(field);
          continue;
        }
        changes.forEach(([field], i) => {
          this.versions.set(field, result.versions[i] ?? "absent");
        });
      }
      for (const [field, value] of entries) this.last.set(field, value);
      return;
    }
    throw new OgygiaError(
      "ERR_OGYGIA_FLEET_WRITE",
      `${fieldKey(this.namespace, this.host, "update_state")} and its details kept changing under this agent`,
      { hint: "is another `ogygia update` running for this host?" },
    );
  }

  private key(field: UpdateField): string {
    return fieldKey(this.namespace, this.host, field);
  }
}
