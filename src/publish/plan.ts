/**
 * What to write: the host's local states turned into key values, compared
 * with what the backend holds, so that only changed values are written.
 */

import {
  STATE_FIELDS,
  STORED_FIELDS,
  type HostChanges,
  type HostValues,
  type StoredField,
  type SystemPathField,
} from "../fleet/index.js";
import { STATE_PATHS, SYSTEM_STATES, readLocalStates } from "../system/index.js";
import { readIrisUrl } from "./iris-url.js";
import { readNebulaValue } from "./nebula.js";
import { readBootLinks, rebootRequired } from "./reboot.js";
import { readSystemPaths, systemPathFieldsOf, type SystemPathValues } from "./system-paths.js";

/** The fields whose values come from the host (`updated_at` comes from the clock). */
export type LocalField = Exclude<StoredField, "updated_at" | SystemPathField | "nebula">;

export const LOCAL_FIELDS: readonly LocalField[] = [...STATE_FIELDS, "reboot_required", "iris_url"];

/** The local fields' values; a system path field left out is not published at all. */
export type LocalValues = Record<LocalField, string | null> &
  Partial<SystemPathValues> & { nebula?: string | null };

/** Where optional fields come from; each left out is not published. */
export interface LocalSources {
  /** `[ogygia.nebula] cert_file`: publishes `nebula`. */
  nebulaCertFile?: string | undefined;
}

/** What the host has to say. */
export interface LocalPublication {
  /** Each field's value; null when unknown, which deletes its key. */
  values: LocalValues;
  /** Why something that exists could not be read (its key is deleted meanwhile). */
  problems: string[];
}

/** Stored values as text, keyed by field (`alive` left out). */
export type StoredValues = ReadonlyMap<StoredField, string>;

export type Change = "written" | "unchanged" | "deleted" | "absent";

export interface PublicationPlan {
  changes: HostChanges;
  /** What happens to each stored field, in `STORED_FIELDS` order. */
  fields: { field: StoredField; value: string | null; change: Change }[];
}

/**
 * Reads the three states' revisions and the reboot check under `root`. A
 * state whose revision is unknown (no link, no file, a dirty tree's
 * `unknown`) or unreadable publishes as unknown: its key is deleted, so
 * that nobody mistakes a stale revision for the running one.
 */
export async function readLocalPublication(
  root: string,
  sources: LocalSources = {},
): Promise<LocalPublication> {
  const [states, booted, next, iris, nebula] = await Promise.all([
    readLocalStates(root),
    readBootLinks(root, STATE_PATHS.booted),
    readBootLinks(root, STATE_PATHS.nextboot),
    readIrisUrl(root),
    readNebulaValue(root, sources.nebulaCertFile),
  ]);
  const problems: string[] = [];
  for (const state of SYSTEM_STATES) {
    const problem = states[state].problem;
    if (problem !== undefined) problems.push(problem);
  }
  for (const reading of [booted, next]) {
    if (reading.problem !== undefined) problems.push(reading.problem);
  }
  if (iris.problem !== undefined) problems.push(iris.problem);
  if (nebula?.problem !== undefined) problems.push(nebula.problem);
  const reboot = rebootRequired(booted.links, next.links);
  const systems = readSystemPaths(root);
  return {
    values: {
      current: states.current.revision,
      booted: states.booted.revision,
      nextboot: states.nextboot.revision,
      reboot_required: reboot === null ? null : String(reboot),
      iris_url: iris.url,
      ...systems.values,
      ...(nebula && { nebula: nebula.value }),
    },
    problems: [...problems, ...systems.problems],
  };
}

/** The stored fields of a host's values, decoded as UTF-8. */
export function storedValues(values: HostValues): Map<StoredField, string> {
  const out = new Map<StoredField, string>();
  for (const field of STORED_FIELDS) {
    const raw = values.get(field);
    if (raw !== undefined) out.set(field, Buffer.from(raw).toString("utf8"));
  }
  return out;
}

/**
 * Compares what the host has to say with what is stored: writes only the
 * values that differ, deletes the keys of unknown values, and always writes
 * `updated_at` (each publication confirms the host's state).
 */
export function planPublication(
  stored: StoredValues,
  local: LocalValues,
  updatedAt: string,
): PublicationPlan {
  const put = new Map<StoredField, string>();
  const deleted: StoredField[] = [];
  const fields: PublicationPlan["fields"] = [];
  const optional = [
    ...systemPathFieldsOf(local),
    ...("nebula" in local ? (["nebula"] as const) : []),
  ];
  for (const field of [...LOCAL_FIELDS, ...optional]) {
    const value = local[field] ?? null;
    const current = stored.get(field);
    if (value === null) {
      if (current === undefined) {
        fields.push({ field, value, change: "absent" });
      } else {
        deleted.push(field);
        fields.push({ field, value, change: "deleted" });
      }
    } else if (current === value) {
      fields.push({ field, value, change: "unchanged" });
    } else {
      put.set(field, value);
      fields.push({ field, value, change: "written" });
    }
  }
  put.set("updated_at", updatedAt);
  fields.push({ field: "updated_at", value: updatedAt, change: "written" });
  return { changes: { put, delete: deleted }, fields };
}

/** What is stored once `changes` have been applied to `stored`. */
export function applyChanges(stored: StoredValues, changes: HostChanges): Map<StoredField, string> {
  const out = new Map(stored);
  for (const [field, value] of changes.put) out.set(field, value);
  for (const field of changes.delete) out.delete(field);
  return out;
}

/** True when a plan changes more than `updated_at`. */
export function changesState(plan: PublicationPlan): boolean {
  return plan.fields.some(
    (f) => f.field !== "updated_at" && (f.change === "written" || f.change === "deleted"),
  );
}
