/**
 * The rollout plan: a release (a system store path per host, and the git
 * revision it was built from) cut into waves, with the limits the agents
 * obey. It is one JSON value at `<prefix>/plan` (see `keys.ts`), written by
 * `ogygia rollout start` and changed with compare-and-swap by `pause`,
 * `resume` and `abort`; agents only read it.
 */

import { createHash, randomBytes } from "node:crypto";

import { OgygiaError } from "../core/index.js";
import { isSystemStorePath } from "../system/index.js";

/** What an operator set the rollout to; `halted` and `completed` are derived (`progress.ts`). */
export type PlanState = "running" | "paused" | "aborted";

export interface Plan {
  /** Unique per `rollout start`: agents' states name it (`update_rollout`). */
  id: string;
  /** The git revision the release was built from. */
  revision: string;
  /** Host → system store path to run. */
  hosts: Record<string, string>;
  /** Host names per wave, in order; every planned host is in exactly one. */
  waves: string[][];
  /** Hosts updating at once, at most (across the fleet). */
  concurrency: number;
  /** Failed hosts (rolled back or refused) at which the rollout halts. */
  budget: number;
  /** Seconds every host of a wave must have been healthy before the next starts. */
  soakSeconds: number;
  state: PlanState;
  createdAt: string;
  /** When `state` last changed, and why (`resume` with a new release says so). */
  changedAt: string;
}

/** The release file `ogygia rollout start` reads. */
export interface Release {
  revision: string;
  hosts: Record<string, string>;
  /** Optional host → tags; hosts with the canary tag form the first wave. */
  tags: Record<string, string[]>;
}

const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

function invalid(file: string, message: string): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_ROLLOUT", `release ${file}: ${message}`, {
    hint: 'expected {"revision": "<git revision>", "hosts": {"<host>": "/nix/store/...-nixos-system-..."}}',
  });
}

/** Parses and checks a release file's text; `file` names it in errors. */
export function parseRelease(text: string, file: string): Release {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw invalid(file, `not JSON (${(err as Error).message})`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw invalid(file, "not a JSON object");
  }
  const raw = data as Record<string, unknown>;
  const revision = raw.revision;
  if (typeof revision !== "string" || !/^[0-9a-f]{7,64}$/.test(revision)) {
    throw invalid(file, '"revision" must be a git revision (7 to 64 hexadecimal digits)');
  }
  const hostsRaw = raw.hosts;
  if (typeof hostsRaw !== "object" || hostsRaw === null || Array.isArray(hostsRaw)) {
    throw invalid(file, '"hosts" must be an object of host → system store path');
  }
  const hosts: Record<string, string> = {};
  for (const [host, value] of Object.entries(hostsRaw as Record<string, unknown>)) {
    if (!HOST_NAME.test(host))
      throw invalid(file, `host ${JSON.stringify(host)} is not a host name`);
    if (typeof value !== "string" || !isSystemStorePath(value)) {
      throw invalid(
        file,
        `host ${host}: ${JSON.stringify(value)} is not a store path under /nix/store`,
      );
    }
    hosts[host] = value;
  }
  if (Object.keys(hosts).length === 0) throw invalid(file, '"hosts" is empty');
  const tags: Record<string, string[]> = {};
  if (raw.tags !== undefined) {
    if (typeof raw.tags !== "object" || raw.tags === null || Array.isArray(raw.tags)) {
      throw invalid(file, '"tags" must be an object of host → list of tags');
    }
    for (const [host, list] of Object.entries(raw.tags as Record<string, unknown>)) {
      if (!Array.isArray(list) || !list.every((t) => typeof t === "string")) {
        throw invalid(file, `tags of ${JSON.stringify(host)} must be a list of strings`);
      }
      tags[host] = list;
    }
  }
  return { revision, hosts, tags };
}

/** A host's place in the hashed order: the first 8 bytes of SHA-256 of its name. */
export function hostOrderKey(host: string): bigint {
  return createHash("sha256").update(host).digest().readBigUInt64BE(0);
}

/**
 * Cuts hosts into waves: the canary-tagged hosts first (if any), then the
 * rest in hashed order, each later wave reaching the next cumulative
 * percentage (`[10, 50, 100]`: 10 %, then up to 50 %, then all). A
 * percentage rounds up, so no wave is empty unless it adds no host; empty
 * waves are dropped. The last percentage must be 100.
 */
export function computeWaves(
  hosts: readonly string[],
  options: { canaries: ReadonlySet<string>; percentages: readonly number[] },
): string[][] {
  const { percentages } = options;
  if (percentages.length === 0 || percentages[percentages.length - 1] !== 100) {
    throw new OgygiaError("ERR_OGYGIA_USAGE", "the last wave percentage must be 100");
  }
  for (let i = 0; i < percentages.length; i++) {
    const p = percentages[i] ?? 0;
    if (!(p > 0 && p <= 100) || (i > 0 && p <= (percentages[i - 1] ?? 0))) {
      throw new OgygiaError(
        "ERR_OGYGIA_USAGE",
        "wave percentages must increase, each in (0, 100], like 10,50,100",
      );
    }
  }
  const ordered = (list: string[]): string[] =>
    list
      .map((h) => ({ h, key: hostOrderKey(h) }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.h < b.h ? -1 : 1))
      .map((e) => e.h);
  const canaries = ordered(hosts.filter((h) => options.canaries.has(h)));
  const rest = ordered(hosts.filter((h) => !options.canaries.has(h)));
  const waves: string[][] = [];
  if (canaries.length > 0) waves.push(canaries);
  let taken = 0;
  for (const p of percentages) {
    const upTo = Math.min(rest.length, Math.ceil((rest.length * p) / 100));
    if (upTo > taken) waves.push(rest.slice(taken, upTo));
    taken = Math.max(taken, upTo);
  }
  return waves;
}

/** `N` hosts or `N%` of the plan's hosts (at least one). */
export function parseConcurrency(text: string, hostCount: number): number {
  const match = /^(\d{1,6})(%?)$/.exec(text.trim());
  const n = match ? Number(match[1]) : NaN;
  if (!match || n < 1 || (match[2] === "%" && n > 100)) {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `--concurrency ${JSON.stringify(text)} must be a number of hosts or a percentage, like 5 or 20%`,
    );
  }
  return match[2] === "%" ? Math.max(1, Math.floor((hostCount * n) / 100)) : n;
}

export interface PlanOptions {
  canaryTag: string;
  percentages: readonly number[];
  concurrency: string;
  budget: number;
  soakSeconds: number;
  now: Date;
}

/** A new plan for `release`. */
export function makePlan(release: Release, options: PlanOptions): Plan {
  const hosts = Object.keys(release.hosts);
  const canaries = new Set(
    hosts.filter((h) => (release.tags[h] ?? []).includes(options.canaryTag)),
  );
  const at = options.now.toISOString();
  return {
    id: `${at.replace(/[-:.]/g, "").slice(0, 15)}-${randomBytes(4).toString("hex")}`,
    revision: release.revision,
    hosts: { ...release.hosts },
    waves: computeWaves(hosts, { canaries, percentages: options.percentages }),
    concurrency: parseConcurrency(options.concurrency, hosts.length),
    budget: options.budget,
    soakSeconds: options.soakSeconds,
    state: "running",
    createdAt: at,
    changedAt: at,
  };
}

/** Parses a stored plan; throws `ERR_OGYGIA_ROLLOUT` naming `key` when it is not one. */
export function parsePlan(bytes: Uint8Array, key: string): Plan {
  const bad = (why: string): OgygiaError =>
    new OgygiaError("ERR_OGYGIA_ROLLOUT", `the rollout plan at ${key} is unusable: ${why}`, {
      hint: "start a new rollout with `ogygia rollout start`",
    });
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    throw bad("not JSON");
  }
  if (typeof data !== "object" || data === null) throw bad("not a JSON object");
  const p = data as { [K in keyof Plan]?: unknown };
  if (
    typeof p.id !== "string" ||
    typeof p.revision !== "string" ||
    typeof p.hosts !== "object" ||
    p.hosts === null ||
    !Array.isArray(p.waves) ||
    !p.waves.every((w) => Array.isArray(w) && w.every((h) => typeof h === "string")) ||
    typeof p.concurrency !== "number" ||
    typeof p.budget !== "number" ||
    typeof p.soakSeconds !== "number" ||
    (p.state !== "running" && p.state !== "paused" && p.state !== "aborted") ||
    typeof p.createdAt !== "string" ||
    typeof p.changedAt !== "string"
  ) {
    throw bad("fields missing or of the wrong type");
  }
  for (const [host, system] of Object.entries(p.hosts as Record<string, unknown>)) {
    if (typeof system !== "string" || !isSystemStorePath(system)) {
      throw bad(`host ${JSON.stringify(host)} has no system store path`);
    }
  }
  return p as unknown as Plan;
}

/** The plan as stored. */
export function encodePlan(plan: Plan): Uint8Array {
  return Buffer.from(JSON.stringify(plan));
}

/** The wave index of `host`, or -1 when it is not planned. */
export function waveOf(plan: Plan, host: string): number {
  return plan.waves.findIndex((w) => w.includes(host));
}
