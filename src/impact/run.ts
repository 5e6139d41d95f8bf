/**
 * The three commands' work: `diff`, `who-runs` and `impact`. Each returns
 * plain data; `render.ts` prints it.
 */

import { readFile } from "node:fs/promises";

import { OgygiaError, compareText, errorMessage, hasErrorCode } from "../core/index.js";
import { compareVersions, packageOfName, parseDrvName, parseStorePath } from "../nix/index.js";
import { isSystemStorePath } from "../system/index.js";
import { diffClosures, type ClosureDiff, type PackageDiff } from "./diff.js";
import {
  findHost,
  readFleetSystems,
  type FleetHost,
  type FleetSystems,
  type SystemStateName,
} from "./fleet.js";
import { storePathOfArgument, type Sources } from "./sources.js";
import { systemChanges, type UnitChanges } from "./units.js";

/** Requests and reads made, for `--json` and the benchmark. */
export interface ReadStats {
  irisdRequests: number;
  localReads: number;
  distinctPaths: number;
  narFetches: number;
}

function stats(sources: Sources): ReadStats {
  return {
    irisdRequests: sources.irisd.requests,
    localReads: sources.reader.localReads,
    distinctPaths: sources.reader.distinctPaths,
    narFetches: sources.files.narFetches,
  };
}

// ---------------------------------------------------------------- diff

export interface DiffResult extends ClosureDiff {
  /** What each argument named, as given. */
  arguments: [string, string];
  stats: ReadStats;
}

const STATE_SUFFIXES: Record<string, SystemStateName> = {
  current: "current",
  booted: "booted",
  nextboot: "nextboot",
};

/** Whether an argument names a host (`web01`, `web01:booted`) rather than a path. */
function isHostReference(arg: string): boolean {
  return !arg.includes("/") && !arg.startsWith(".");
}

/** The system path of a host reference, reading the fleet once. */
export async function resolveReference(
  arg: string,
  fleet: () => Promise<FleetSystems>,
): Promise<string> {
  if (!isHostReference(arg)) return storePathOfArgument(arg);
  const colon = arg.lastIndexOf(":");
  const name = colon < 0 ? arg : arg.slice(0, colon);
  const suffix = colon < 0 ? "current" : arg.slice(colon + 1);
  const state = STATE_SUFFIXES[suffix];
  if (state === undefined) {
    throw new OgygiaError("ERR_OGYGIA_USAGE", `'${arg}': unknown state '${suffix}'`, {
      hint: "Use HOST, HOST:booted or HOST:nextboot.",
      exitCode: 2,
    });
  }
  const host = findHost((await fleet()).hosts, name);
  if (host === undefined) {
    throw new OgygiaError("ERR_OGYGIA_IMPACT", `no host '${name}' in the fleet`, {
      hint: "`ogygia status` lists the hosts.",
    });
  }
  const system = host.systems[state];
  if (system === null) {
    throw new OgygiaError(
      "ERR_OGYGIA_IMPACT",
      `${host.host} has not published its ${state} system path (${state}_system)`,
      { hint: "It needs an `ogygia publish` that publishes system paths." },
    );
  }
  return system;
}

function lazyFleet(sources: Sources): () => Promise<FleetSystems> {
  let fleet: Promise<FleetSystems> | undefined;
  return () => (fleet ??= readFleetSystems(sources.config));
}

/** `ogygia diff A B`. */
export async function runDiff(sources: Sources, a: string, b: string): Promise<DiffResult> {
  const fleet = lazyFleet(sources);
  const [before, after] = await Promise.all([
    resolveReference(a, fleet),
    resolveReference(b, fleet),
  ]);
  const [oldClosure, newClosure] = await Promise.all([
    sources.reader.closure(before),
    sources.reader.closure(after),
  ]);
  return { ...diffClosures(oldClosure, newClosure), arguments: [a, b], stats: stats(sources) };
}

// ---------------------------------------------------------------- who-runs

export type VersionOp = "<" | "<=" | ">" | ">=" | "=" | "!=";

export type Pattern =
  | { kind: "path"; path: string }
  | { kind: "package"; name: string; op: VersionOp | undefined; version: string };

const RANGE = /^([^<>=!\s]+?)\s*(<=|>=|==|!=|<|>|=)\s*(\S+)$/;

/** Parses a who-runs pattern: a store path or link, `name`, `name-version`, or `name<version`. */
export function parsePattern(text: string): Pattern {
  if (text.startsWith("/") || text.startsWith(".")) {
    return { kind: "path", path: storePathOfArgument(text) };
  }
  const range = RANGE.exec(text);
  if (range !== null) {
    const [, name = "", rawOp = "=", version = ""] = range;
    const op = (rawOp === "==" ? "=" : rawOp) as VersionOp;
    return { kind: "package", name, op, version };
  }
  const drv = parseDrvName(text);
  return drv.version === ""
    ? { kind: "package", name: drv.name, op: undefined, version: "" }
    : { kind: "package", name: drv.name, op: "=", version: drv.version };
}

/** Whether a store path matches a pattern (paths of a closure only). */
export function matchesPattern(pattern: Pattern, storePath: string): boolean {
  if (pattern.kind === "path") return storePath === pattern.path;
  // A package's name starts its store path's name (after "<store>/<hash>-"): most paths end here.
  if (!storePath.startsWith(pattern.name, storePath.lastIndexOf("/") + 34)) return false;
  const pkg = packageOfName(parseStorePath(storePath).name);
  if (pkg.name !== pattern.name) return false;
  if (pattern.op === undefined) return true;
  const c = compareVersions(pkg.version, pattern.version);
  switch (pattern.op) {
    case "<":
      return c < 0;
    case "<=":
      return c <= 0;
    case ">":
      return c > 0;
    case ">=":
      return c >= 0;
    case "=":
      return c === 0;
    case "!=":
      return c !== 0;
  }
}

export interface WhoRunsMatch {
  state: SystemStateName;
  system: string;
  paths: string[];
}

export interface HostProblem {
  host: string;
  state: SystemStateName;
  system: string | null;
  reason: string;
}

export interface WhoRunsResult {
  pattern: string;
  states: SystemStateName[];
  hosts: { host: string; matches: WhoRunsMatch[] }[];
  /** Hosts whose system could not be read: the answer is incomplete without them. */
  unreadable: HostProblem[];
  /** Hosts that published no system path for a state asked about. */
  unknown: HostProblem[];
  hostsChecked: number;
  warnings: string[];
  stats: ReadStats;
}

/** `ogygia who-runs PATTERN`. */
export async function runWhoRuns(
  sources: Sources,
  text: string,
  options: { allStates: boolean },
): Promise<WhoRunsResult> {
  const pattern = parsePattern(text);
  const fleet = await readFleetSystems(sources.config);
  const states: SystemStateName[] = options.allStates
    ? ["current", "booted", "nextboot"]
    : ["current"];
  // One predicate for every host: the reader works out what lies below each path once.
  const isMatch = (storePath: string): boolean => matchesPattern(pattern, storePath);
  const result: WhoRunsResult = {
    pattern: text,
    states,
    hosts: [],
    unreadable: [],
    unknown: [],
    hostsChecked: fleet.hosts.length,
    warnings: fleet.warnings,
    stats: stats(sources),
  };
  const perHost = await Promise.all(
    fleet.hosts.map(async (host) => {
      const matches: WhoRunsMatch[] = [];
      const problems: { unreadable: HostProblem[]; unknown: HostProblem[] } = {
        unreadable: [],
        unknown: [],
      };
      for (const state of states) {
        const system = host.systems[state];
        if (system === null) {
          problems.unknown.push({
            host: host.host,
            state,
            system,
            reason: `no ${state}_system published`,
          });
          continue;
        }
        try {
          const paths = (await sources.reader.matchesIn(system, isMatch)).sort(compareText);
          if (paths.length > 0) matches.push({ state, system, paths });
        } catch (err) {
          if (!(err instanceof OgygiaError)) throw err;
          problems.unreadable.push({ host: host.host, state, system, reason: errorMessage(err) });
        }
      }
      return { host: host.host, matches, problems };
    }),
  );
  for (const entry of perHost) {
    if (entry.matches.length > 0) result.hosts.push({ host: entry.host, matches: entry.matches });
    result.unreadable.push(...entry.problems.unreadable);
    result.unknown.push(...entry.problems.unknown);
  }
  result.stats = stats(sources);
  return result;
}

// ---------------------------------------------------------------- impact

export type ImpactStatus = "unchanged" | "changes" | "unreadable" | "unknown";

/** What a release does to one host; hosts with equal impacts share a group. */
export interface HostImpact {
  status: ImpactStatus;
  packages: PackageDiff;
  units: UnitChanges;
  reboot: boolean;
  bootLinksChanged: string[];
  sizeDelta: number;
  /** Why the impact is unknown or unreadable. */
  reason: string | null;
}

export interface ImpactGroup {
  id: number;
  hosts: { host: string; from: string | null; to: string }[];
  impact: HostImpact;
}

export interface ImpactResult {
  release: string;
  summary: Record<ImpactStatus, number> & { reboot: number; hosts: number };
  groups: ImpactGroup[];
  warnings: string[];
  stats: ReadStats;
}

const EMPTY_PACKAGES: PackageDiff = { changed: [], added: [], removed: [] };
const NO_UNITS: UnitChanges = { start: [], stop: [], restart: [] };

function plainImpact(status: ImpactStatus, reason: string | null): HostImpact {
  return {
    status,
    packages: EMPTY_PACKAGES,
    units: NO_UNITS,
    reboot: false,
    bootLinksChanged: [],
    sizeDelta: 0,
    reason,
  };
}

/** Reads a release file: `{"revision": "...", "hosts": {"web01": "/nix/store/..."}}`. */
export async function readRelease(file: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR", "EACCES", "EPERM", "EISDIR")) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT",
        `cannot read release file ${file}: ${errorMessage(err)}`,
      );
    }
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new OgygiaError(
      "ERR_OGYGIA_IMPACT",
      `release file ${file} is not JSON: ${errorMessage(err)}`,
    );
  }
  const hosts = doc !== null && typeof doc === "object" && "hosts" in doc ? doc.hosts : undefined;
  if (hosts === null || typeof hosts !== "object" || Array.isArray(hosts)) {
    throw new OgygiaError("ERR_OGYGIA_IMPACT", `release file ${file} has no "hosts" object`, {
      hint: 'Write it like {"revision": "...", "hosts": {"web01": "/nix/store/...-nixos-system-web01"}}.',
    });
  }
  const out = new Map<string, string>();
  for (const [host, value] of Object.entries(hosts as Record<string, unknown>)) {
    if (typeof value !== "string" || !isSystemStorePath(value)) {
      throw new OgygiaError(
        "ERR_OGYGIA_IMPACT",
        `release file ${file}: hosts.${host} is not a store path under /nix/store`,
      );
    }
    out.set(host, value);
  }
  return out;
}

async function hostImpact(sources: Sources, from: string | null, to: string): Promise<HostImpact> {
  if (from === null) return plainImpact("unknown", "no current_system published");
  if (from === to) return plainImpact("unchanged", null);
  try {
    const [before, after] = await Promise.all([
      sources.reader.closure(from),
      sources.reader.closure(to),
    ]);
    const diff = diffClosures(before, after);
    const changes = await systemChanges(sources.files, from, to);
    return {
      status: "changes",
      packages: { changed: diff.changed, added: diff.added, removed: diff.removed },
      units: changes.units,
      reboot: changes.reboot,
      bootLinksChanged: changes.bootLinksChanged,
      sizeDelta: diff.sizeDelta,
      reason: null,
    };
  } catch (err) {
    if (!(err instanceof OgygiaError)) throw err;
    return plainImpact("unreadable", errorMessage(err));
  }
}

/** `ogygia impact RELEASE` or `--all-to PATH`. */
export async function runImpact(
  sources: Sources,
  target: { releaseFile: string } | { allTo: string },
): Promise<ImpactResult> {
  const fleet = await readFleetSystems(sources.config);
  const warnings = [...fleet.warnings];
  const plan: { host: string; from: string | null; to: string }[] = [];
  let release: string;
  if ("releaseFile" in target) {
    release = target.releaseFile;
    for (const [name, to] of await readRelease(target.releaseFile)) {
      const host: FleetHost | undefined = findHost(fleet.hosts, name);
      if (host === undefined) warnings.push(`${name} is in the release but not in the fleet`);
      plan.push({ host: host?.host ?? name, from: host?.systems.current ?? null, to });
    }
  } else {
    const to = storePathOfArgument(target.allTo);
    release = to;
    for (const host of fleet.hosts) plan.push({ host: host.host, from: host.systems.current, to });
  }
  const impacts = await Promise.all(plan.map((p) => hostImpact(sources, p.from, p.to)));
  const groups = new Map<string, ImpactGroup>();
  plan.forEach((p, i) => {
    const impact = impacts[i];
    if (impact === undefined) return;
    const key = JSON.stringify(impact);
    let group = groups.get(key);
    if (group === undefined) {
      group = { id: 0, hosts: [], impact };
      groups.set(key, group);
    }
    group.hosts.push(p);
  });
  const order: ImpactStatus[] = ["changes", "unreadable", "unknown", "unchanged"];
  const sorted = [...groups.values()].sort(
    (a, b) =>
      order.indexOf(a.impact.status) - order.indexOf(b.impact.status) ||
      Number(b.impact.reboot) - Number(a.impact.reboot) ||
      b.hosts.length - a.hosts.length ||
      compareText(a.hosts[0]?.host ?? "", b.hosts[0]?.host ?? ""),
  );
  sorted.forEach((g, i) => (g.id = i + 1));
  const summary = {
    hosts: plan.length,
    unchanged: 0,
    changes: 0,
    unreadable: 0,
    unknown: 0,
    reboot: 0,
  };
  for (const impact of impacts) {
    summary[impact.status] += 1;
    if (impact.reboot) summary.reboot += 1;
  }
  return { release, summary, groups: sorted, warnings, stats: stats(sources) };
}

export type { ClosureDiff };
