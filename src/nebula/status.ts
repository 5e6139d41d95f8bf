/**
 * `ogygia nebula status`: every host's published certificate facts (the
 * `nebula` key, see `published.ts`) read from the fleet registry and
 * assessed (`health.ts`) against the CAs this machine trusts.
 */

import { stat } from "node:fs/promises";
import path from "node:path";

import type { OgygiaConfig } from "../config/index.js";
import { OgygiaError, hasErrorCode } from "../core/index.js";
import { describeBackends, openFleetBackend } from "../fleet/index.js";
import { readCertificates } from "./cert-tool.js";
import { assessCertificates, type CertEntry, type CertReport } from "./health.js";
import { decodeNebulaFacts } from "./published.js";

export interface NebulaStatus extends CertReport {
  backend: string;
  namespace: string;
  /** The CA files read, and the fingerprints they hold. */
  cas: { file: string; fingerprints: string[] }[];
  /** Hosts whose publisher is alive right now. */
  alive: string[];
}

/**
 * The fingerprints of the CAs `[ogygia.nebula] ca_files` name, plus
 * `ca_dir/ca.crt` when it exists; none found leaves issuers unchecked.
 */
async function knownCas(config: OgygiaConfig): Promise<{ file: string; fingerprints: string[] }[]> {
  const files = [...(config.nebula?.caFiles ?? [])];
  const fromDir = path.join(config.nebula?.caDir ?? "nebula-ca", "ca.crt");
  try {
    await stat(fromDir);
    if (!files.includes(fromDir)) files.push(fromDir);
  } catch (err) {
    if (!hasErrorCode(err, "ENOENT")) throw err;
  }
  const cas: { file: string; fingerprints: string[] }[] = [];
  for (const file of files) {
    let certificates;
    try {
      certificates = await readCertificates(file);
    } catch (err) {
      if (!(err instanceof OgygiaError)) throw err;
      throw new OgygiaError(
        "ERR_OGYGIA_NEBULA",
        `cannot read the CA file ${file} ([ogygia.nebula] ca_files): ${err.message}`,
        { hint: "Name the mesh's ca.crt (or a bundle of CA certificates).", cause: err },
      );
    }
    cas.push({ file, fingerprints: certificates.filter((c) => c.isCa).map((c) => c.fingerprint) });
  }
  return cas;
}

/** Reads and assesses the fleet's certificates at `now`. */
export async function nebulaStatus(options: {
  config: OgygiaConfig | undefined;
  now: number;
}): Promise<NebulaStatus> {
  const { config } = options;
  const backend = config && (await openFleetBackend(config));
  if (!config || !backend) {
    throw new OgygiaError(
      "ERR_OGYGIA_NEBULA",
      "nebula status reads what hosts publish, and no fleet backend is configured",
      { hint: `Configure ${describeBackends("section", "or")} on this machine.` },
    );
  }
  try {
    const [cas, snapshot] = await Promise.all([knownCas(config), backend.readHosts()]);
    const entries: CertEntry[] = [];
    const alive: string[] = [];
    for (const [host, values] of snapshot.hosts) {
      const raw = values.get("nebula");
      if (raw === undefined) continue;
      if (values.has("alive")) alive.push(host);
      const decoded = decodeNebulaFacts(Buffer.from(raw).toString("utf8"));
      entries.push(
        "problem" in decoded
          ? { host, facts: null, problem: decoded.problem }
          : { host, facts: decoded },
      );
    }
    const fingerprints = cas.flatMap((ca) => ca.fingerprints);
    const report = assessCertificates(entries, {
      now: options.now,
      knownCas: cas.length === 0 ? null : new Set(fingerprints),
    });
    return {
      backend: backend.kind,
      namespace: backend.config.namespace,
      cas,
      alive: alive.sort(),
      ...report,
    };
  } finally {
    await backend.close();
  }
}
