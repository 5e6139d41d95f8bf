/**
 * The builders a fleet snapshot offers: hosts that are online (their
 * publisher holds `alive`), other than this one, with a well-formed entry.
 */

import type { FleetSnapshot } from "../fleet/index.js";
import { parseBuilderEntry, type Builder } from "./entry.js";

/** An entry refused: the host and why. */
export interface MalformedEntry {
  host: string;
  problem: string;
}

export interface FleetBuilders {
  builders: Builder[];
  malformed: MalformedEntry[];
}

/** The online builders of `snapshot` other than `localHost`, and the entries refused. */
export function buildersOf(snapshot: FleetSnapshot, localHost: string): FleetBuilders {
  const builders: Builder[] = [];
  const malformed: MalformedEntry[] = [];
  for (const [host, values] of snapshot.hosts) {
    const raw = values.get("builder");
    if (raw === undefined || host === localHost) continue;
    // The entry lives on the publisher's lease; without `alive` it is a
    // leftover on its way out.
    if (!values.has("alive")) continue;
    const parsed = parseBuilderEntry(raw);
    if ("problem" in parsed) malformed.push({ host, problem: parsed.problem });
    else builders.push({ host, entry: parsed });
  }
  return { builders, malformed };
}
