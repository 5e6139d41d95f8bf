/**
 * The fleet as the impact commands see it: each host's published system
 * store paths (`current_system`, `booted_system`, `nextboot_system`),
 * checked as `ogygia status` checks them.
 */

import { openBackend } from "../command/index.js";
import type { OgygiaConfig } from "../config/index.js";
import { OgygiaError, naturalCompare } from "../core/index.js";
import { STATE_FIELDS, describeBackends, type FleetSnapshot } from "../fleet/index.js";
import { isSystemStorePath, parseRevision } from "../system/index.js";

export type SystemStateName = (typeof STATE_FIELDS)[number];

export interface FleetHost {
  host: string;
  /** Each state's system path; null when not published (or refused, with a warning). */
  systems: Record<SystemStateName, string | null>;
}

export interface FleetSystems {
  hosts: FleetHost[];
  warnings: string[];
}

/** The hosts of a snapshot with their checked system paths, in natural order of names. */
export function fleetSystems(snapshot: FleetSnapshot): FleetSystems {
  const warnings: string[] = [];
  const hosts: FleetHost[] = [];
  for (const [host, values] of snapshot.hosts) {
    const systems: FleetHost["systems"] = { current: null, booted: null, nextboot: null };
    for (const state of STATE_FIELDS) {
      const raw = values.get(`${state}_system`);
      if (raw === undefined) continue;
      const parsed = parseRevision(raw);
      if (parsed.ok && parsed.revision !== null && isSystemStorePath(parsed.revision)) {
        systems[state] = parsed.revision;
      } else {
        warnings.push(`${host}/${state}_system: value is not a store path under /nix/store`);
      }
    }
    hosts.push({ host, systems });
  }
  hosts.sort((a, b) => naturalCompare(a.host, b.host));
  return { hosts, warnings };
}

/** Reads the configured fleet; throws when none is configured or it cannot be read. */
export async function readFleetSystems(config: OgygiaConfig | undefined): Promise<FleetSystems> {
  const backend = await openBackend(config);
  if (backend === undefined) {
    throw new OgygiaError(
      "ERR_OGYGIA_IMPACT",
      `no ${describeBackends("label", "or")} is configured, so there is no fleet to read`,
      { hint: "Name the configuration with --config or $OGYGIA_CONFIG." },
    );
  }
  try {
    return fleetSystems(await backend.readHosts());
  } finally {
    await backend.close();
  }
}

/**
 * The host an argument names: its exact name, else the one host whose name
 * starts with `<name>.` (a short name for a full one).
 */
export function findHost(hosts: readonly FleetHost[], name: string): FleetHost | undefined {
  const exact = hosts.find((h) => h.host === name);
  if (exact !== undefined) return exact;
  const lower = name.toLowerCase();
  const short = hosts.filter(
    (h) => h.host.toLowerCase() === lower || h.host.toLowerCase().startsWith(`${lower}.`),
  );
  return short.length === 1 ? short[0] : undefined;
}
