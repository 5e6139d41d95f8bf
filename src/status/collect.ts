/**
 * `ogygia status`: gathers the local host's states and, when configured, the
 * fleet's, into one report. Printing is `render.ts`'s job.
 */

import { openBackend, startContext, type CommandOptions } from "../command/index.js";
import type { OgygiaConfig } from "../config/index.js";
import {
  OgygiaError,
  compareText,
  errorMessage,
  naturalCompare,
  naturalSortBy,
} from "../core/index.js";
import {
  backendLabel,
  FIELD_COUNT,
  fieldIndex,
  fieldKey,
  PUBLISHER_FIELDS,
  STATE_FIELDS,
  type BackendKind,
  type FleetField,
  type FleetTable,
  type FleetValue,
} from "../fleet/index.js";
import {
  isSystemStorePath,
  parseRevision,
  readLocalStates,
  readSystemPath,
  type DetectedHostname,
  type LinkMemo,
  type LocalStates,
} from "../system/index.js";

import { readHostUpdate, type HostUpdateStatus } from "./update.js";

export type StatusMode = "local" | BackendKind;

type StateField = (typeof STATE_FIELDS)[number];

export interface HostStatus {
  /** The host's name as detected (local) or as stored in the fleet. */
  host: string;
  /** `host` with the configured domain trimmed. */
  displayName: string;
  local: boolean;
  current: string | null;
  booted: string | null;
  nextboot: string | null;
  /** States that exist but could not be used (the table shows them as such). */
  unreadable: StateField[];
  /**
   * Whether the host's publisher holds `alive`. Null when unknown: local-only
   * mode, or a host with no publisher keys at all (only the reference's
   * three state keys, written by some other tool).
   */
  online: boolean | null;
  /** The published reboot check (`reboot_required`); null when unknown. */
  rebootRequired: boolean | null;
  /** When the host last confirmed its state (`updated_at`, RFC 3339); null when unknown. */
  updatedAt: string | null;
  /** Each state's system store path (`current_system`, ...); absent or null when unknown. */
  systems?: SystemPaths;
  /** The host's update agent's published state (`update_*`); absent or null when none. */
  update?: HostUpdateStatus | null;
}

/** The store path each state runs, as published (or read locally); null when unknown. */
export interface SystemPaths {
  current: string | null;
  booted: string | null;
  nextboot: string | null;
}

export interface StatusReport {
  mode: StatusMode;
  /** The configuration file used, or null in local-only mode. */
  configPath: string | null;
  namespace: string | null;
  /** Why the fleet could not be read (the report then holds the local host only). */
  error: string | null;
  /** True when the fleet was read and no host had published yet. */
  nothingPublished: boolean;
  hosts: HostStatus[];
  /** Problems that did not stop the report: unreadable files, refused values. */
  warnings: string[];
  hostnameSource: DetectedHostname["source"];
}

export type StatusOptions = CommandOptions;

/** Removes `.domain` from the end of `host`, ignoring case. */
export function trimDomain(host: string, domain: string | undefined): string {
  if (!domain) return host;
  const suffix = `.${domain}`;
  return host.length > suffix.length && host.toLowerCase().endsWith(suffix.toLowerCase())
    ? host.slice(0, -suffix.length)
    : host;
}

/** Whether a fleet entry names the local host: its full or short name, any case. */
export function isLocalHost(entry: string, localHost: string, domain: string | undefined): boolean {
  return localHostMatcher(localHost, domain)(entry);
}

/** `isLocalHost` for one local host and many entries: the names are computed once. */
export function localHostMatcher(
  localHost: string,
  domain: string | undefined,
): (entry: string) => boolean {
  const full = localHost.toLowerCase();
  const names = new Set([full, full.split(".")[0], trimDomain(full, domain)]);
  return (entry) => {
    const e = entry.toLowerCase();
    return names.has(e) || names.has(trimDomain(e, domain));
  };
}

function localRow(
  hostname: string,
  domain: string | undefined,
  states: LocalStates,
  root: string,
  memo: LinkMemo,
): HostStatus {
  return {
    host: hostname,
    displayName: trimDomain(hostname, domain),
    local: true,
    current: states.current.revision,
    booted: states.booted.revision,
    nextboot: states.nextboot.revision,
    unreadable: STATE_FIELDS.filter((s) => states[s].problem !== undefined),
    online: null,
    rebootRequired: null,
    updatedAt: null,
    systems: localSystemPaths(root, memo),
  };
}

function localSystemPaths(root: string, memo: LinkMemo): SystemPaths {
  return {
    current: readSystemPath(root, "current", memo).storePath,
    booted: readSystemPath(root, "booted", memo).storePath,
    nextboot: readSystemPath(root, "nextboot", memo).storePath,
  };
}

/** A fleet table's values, and where one host's row starts in them. */
type TableValues = readonly (FleetValue | undefined)[];

const STATE_COLUMNS = STATE_FIELDS.map(fieldIndex);
const SYSTEM_FIELDS = STATE_FIELDS.map((state) => `${state}_system` as const);
const SYSTEM_COLUMNS = SYSTEM_FIELDS.map(fieldIndex);
const ALIVE = fieldIndex("alive");
const REBOOT_REQUIRED = fieldIndex("reboot_required");
const UPDATED_AT = fieldIndex("updated_at");
const PUBLISHER_COLUMNS = PUBLISHER_FIELDS.map(fieldIndex);

/** Sets the system paths of a fleet row from `<state>_system`, refusing values that are not store paths. */
function applySystemPaths(
  row: HostStatus,
  values: TableValues,
  base: number,
  ctx: FleetContext,
): void {
  for (let i = 0; i < STATE_FIELDS.length; i++) {
    const raw = values[base + (SYSTEM_COLUMNS[i] ?? -1)];
    if (raw === undefined) continue;
    const state = STATE_FIELDS[i] ?? "current";
    const field = SYSTEM_FIELDS[i] ?? "current_system";
    const parsed = parseRevision(raw);
    if (!parsed.ok) {
      refuse(ctx, row.host, field, parsed.reason);
    } else if (parsed.revision === null || !isSystemStorePath(parsed.revision)) {
      refuse(ctx, row.host, field, "value is not a store path under /nix/store");
    } else {
      row.systems ??= { current: null, booted: null, nextboot: null };
      row.systems[state] = parsed.revision;
    }
  }
}

interface FleetContext {
  domain: string | undefined;
  namespace: string;
  kind: BackendKind;
  warnings: string[];
  /** Whether any host in the namespace was written by `ogygia publish`. */
  publisherFleet: boolean;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** A publisher field's text, or a reason to refuse it (size, UTF-8, control characters, shape). */
function parsePublisherField(
  field: "reboot_required" | "updated_at",
  raw: FleetValue,
): { ok: true; value: string } | { ok: false; reason: string } {
  const parsed = parseRevision(raw);
  if (!parsed.ok) return parsed;
  const text = parsed.revision ?? "";
  if (field === "reboot_required") {
    return text === "true" || text === "false"
      ? { ok: true, value: text }
      : { ok: false, reason: 'value is neither "true" nor "false"' };
  }
  return RFC3339.test(text) && !Number.isNaN(Date.parse(text))
    ? { ok: true, value: text }
    : { ok: false, reason: "value is not an RFC 3339 time" };
}

/**
 * Sets what the publisher keys say about a host on `row`. Where `ogygia
 * publish` runs (any host in the namespace has a publisher key), a host
 * without `alive` is offline. In a namespace no publisher ever wrote to
 * (states written by another tool, as in the reference layout) liveness is
 * unknown: `online` is null and no host is marked.
 */
function applyPublisherStatus(
  row: Pick<HostStatus, "online" | "rebootRequired" | "updatedAt">,
  host: string,
  values: TableValues,
  base: number,
  ctx: FleetContext,
): void {
  row.online = ctx.publisherFleet ? values[base + ALIVE] !== undefined : null;
  row.rebootRequired = null;
  row.updatedAt = null;
  const reboot = values[base + REBOOT_REQUIRED];
  if (reboot !== undefined) {
    const parsed = parsePublisherField("reboot_required", reboot);
    if (parsed.ok) row.rebootRequired = parsed.value === "true";
    else refuse(ctx, host, "reboot_required", parsed.reason);
  }
  const updated = values[base + UPDATED_AT];
  if (updated !== undefined) {
    const parsed = parsePublisherField("updated_at", updated);
    if (parsed.ok) row.updatedAt = parsed.value;
    else refuse(ctx, host, "updated_at", parsed.reason);
  }
}

function refuse(ctx: FleetContext, host: string, field: FleetField, reason: string): void {
  ctx.warnings.push(
    `${backendLabel(ctx.kind)} key ${fieldKey(ctx.namespace, host, field)}: ${reason}`,
  );
}

/** Sets one state column of a fleet row from its raw value, or marks it refused. */
function applyState(
  row: HostStatus,
  field: StateField,
  raw: FleetValue | undefined,
  ctx: FleetContext,
): void {
  if (raw === undefined) return;
  const parsed = parseRevision(raw);
  if (parsed.ok) {
    row[field] = parsed.revision;
  } else {
    row.unreadable.push(field);
    refuse(ctx, row.host, field, parsed.reason);
  }
}

function fleetRow(host: string, values: TableValues, base: number, ctx: FleetContext): HostStatus {
  const row: HostStatus = {
    host,
    displayName: trimDomain(host, ctx.domain),
    local: false,
    current: null,
    booted: null,
    nextboot: null,
    unreadable: [],
    online: null,
    rebootRequired: null,
    updatedAt: null,
  };
  // Warnings in key order: publisher fields first, then the states.
  applyPublisherStatus(row, host, values, base, ctx);
  applyState(row, "current", values[base + (STATE_COLUMNS[0] ?? -1)], ctx);
  applyState(row, "booted", values[base + (STATE_COLUMNS[1] ?? -1)], ctx);
  applyState(row, "nextboot", values[base + (STATE_COLUMNS[2] ?? -1)], ctx);
  applySystemPaths(row, values, base, ctx);
  row.update = readHostUpdate(values, base);
  return row;
}

/**
 * Of the local host's own fleet entries (full and short name may both
 * exist), the one whose publisher keys describe it: a live one first, then
 * one that a publisher wrote, then any.
 */
function pickOwnEntry(table: FleetTable, rows: readonly number[]): number | undefined {
  const has = (row: number, column: number) =>
    table.values[row * FIELD_COUNT + column] !== undefined;
  return rows.find((row) => has(row, ALIVE)) ?? rows.find((row) => has(row, UPDATED_AT)) ?? rows[0];
}

/** Orders fleet rows by displayed name (numbers in names compare as numbers). */
export function compareRows(a: HostStatus, b: HostStatus): number {
  return naturalCompare(a.displayName, b.displayName) || compareText(a.host, b.host);
}

/** Sorts rows as `compareRows` does, computing each row's key once. */
export function sortRows(rows: readonly HostStatus[]): HostStatus[] {
  return naturalSortBy(rows, displayNameOf, hostOf);
}

function displayNameOf(row: HostStatus): string {
  return row.displayName;
}

function hostOf(row: HostStatus): string {
  return row.host;
}

/** The fleet part of a report: read, failed, or not configured (undefined). */
export type FleetReading =
  | { kind: BackendKind; namespace: string; table: FleetTable; error: null }
  | { kind: BackendKind; namespace: string; table: null; error: string };

async function readFleet(config: OgygiaConfig): Promise<FleetReading | undefined> {
  const backend = await openBackend(config);
  if (!backend) return undefined;
  const { kind } = backend;
  const { namespace } = backend.config;
  try {
    return { kind, namespace, table: await backend.readTable(), error: null };
  } catch (err) {
    if (!(err instanceof OgygiaError)) throw err;
    return { kind, namespace, table: null, error: errorMessage(err) };
  } finally {
    await backend.close();
  }
}

/** Whether any host in the table has a key that only `ogygia publish` writes. */
function hasPublisherKeys(table: FleetTable): boolean {
  const values = table.values;
  for (let base = 0; base < values.length; base += FIELD_COUNT) {
    // An index loop: an array iterator per host costs more in code not yet optimised.
    // eslint-disable-next-line @typescript-eslint/prefer-for-of
    for (let i = 0; i < PUBLISHER_COLUMNS.length; i++) {
      if (values[base + (PUBLISHER_COLUMNS[i] ?? 0)] !== undefined) return true;
    }
  }
  return false;
}

/** The NixOS option that writes the `build-revision` files. */
export const REVISION_OPTION = "ogygia.versions.build_revision.enable";

/**
 * A warning when none of the three states has a `build-revision` file at
 * all (a host not built with Ogygia's module yet), else undefined. Files
 * that exist but cannot be read have warnings of their own.
 */
export function missingRevisionFiles(states: LocalStates): string | undefined {
  const readings = STATE_FIELDS.map((s) => states[s]);
  if (readings.some((r) => r.revision !== null || r.problem !== undefined)) return undefined;
  return (
    `no build-revision file in any system state (like ${states.current.path}): ` +
    `build this host with the NixOS option ${REVISION_OPTION} (on by default with ogygia.enable) ` +
    "to record its revisions"
  );
}

/** Everything a report is built from. */
export interface ReportInputs {
  config: OgygiaConfig | undefined;
  detected: DetectedHostname;
  states: LocalStates;
  fleet: FleetReading | undefined;
  /** Where the local system paths are read (`--root`); "/" when not given. */
  root?: string;
  /** What the reads before learnt of the root's links (`LinkMemo`). */
  linkMemo?: LinkMemo;
}

/** Builds the report from what was read: the local row first, then the fleet's, sorted. */
export function buildReport({
  config,
  detected,
  states,
  fleet,
  root = "/",
  linkMemo = new Map(),
}: ReportInputs): StatusReport {
  const warnings = STATE_FIELDS.flatMap((s) => states[s].problem ?? []);
  const noRevisionFiles = missingRevisionFiles(states);
  if (noRevisionFiles !== undefined) warnings.push(noRevisionFiles);
  const domain = config?.domain;
  const local = localRow(detected.hostname, domain, states, root, linkMemo);
  const base = {
    configPath: config?.path ?? null,
    warnings,
    hostnameSource: detected.source,
  };

  if (!fleet) {
    return {
      ...base,
      mode: "local",
      namespace: null,
      error: null,
      nothingPublished: false,
      hosts: [local],
    };
  }
  if (fleet.table === null) {
    return {
      ...base,
      mode: fleet.kind,
      namespace: fleet.namespace,
      error: fleet.error,
      nothingPublished: false,
      hosts: [local],
    };
  }
  const { table } = fleet;
  const others: HostStatus[] = [];
  const own: number[] = [];
  const isLocal = localHostMatcher(detected.hostname, domain);
  const ctx: FleetContext = {
    domain,
    namespace: fleet.namespace,
    kind: fleet.kind,
    warnings,
    publisherFleet: hasPublisherKeys(table),
  };
  const { hosts, values } = table;
  for (let i = 0; i < hosts.length; i++) {
    const host = hosts[i] ?? "";
    if (isLocal(host)) {
      own.push(i);
      continue;
    }
    others.push(fleetRow(host, values, i * FIELD_COUNT, ctx));
  }
  // The local row shows local states, and what the fleet knows of its publisher.
  const entry = pickOwnEntry(table, own);
  if (entry !== undefined) {
    applyPublisherStatus(local, hosts[entry] ?? "", values, entry * FIELD_COUNT, ctx);
  }

  return {
    ...base,
    mode: fleet.kind,
    namespace: fleet.namespace,
    error: null,
    nothingPublished: hosts.length === 0,
    hosts: [local, ...sortRows(others)],
  };
}

/** Builds the status report. Throws `OgygiaError` only for a broken configuration. */
export async function collectStatus(options: StatusOptions): Promise<StatusReport> {
  // One memo of the root's links for this reading: the configuration, the
  // states' revision files and their system paths share their folders.
  const linkMemo: LinkMemo = new Map();
  const context = await startContext(options, linkMemo);
  // The fleet read starts as soon as the configuration says where: loading
  // the etcd client takes a few hundred milliseconds, which the local reads
  // and host name detection then overlap.
  const [config, states, detected, fleet] = await Promise.all([
    context.config,
    readLocalStates(options.root, linkMemo),
    context.detected,
    context.config.then((config) => (config ? readFleet(config) : undefined)),
  ]);
  const report = buildReport({ config, detected, states, fleet, root: options.root, linkMemo });
  if (context.source.unreadable !== undefined) report.warnings.unshift(context.source.unreadable);
  return report;
}
