/**
 * `ogygia nebula`: a Nebula mesh managed with the fleet. The CA lives on the
 * operator's machine (`ca init`); each host makes its own key pair and only
 * its public key leaves it (`keygen`); the operator signs it with an address
 * handed out through the registry (`sign --ip auto`, see `allocate.ts`).
 * Certificates are made by Debian's `nebula-cert` (`cert-tool.ts`).
 */

import { createHash } from "node:crypto";
import {
  chmod,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import type { OgygiaConfig } from "../config/index.js";
import { OgygiaError, hasErrorCode } from "../core/index.js";
import { configuredBackend, openCoordinator } from "../fleet/index.js";
import { formatIpv4, parseCidr, parseSubnet, type Ipv4Network } from "./addresses.js";
import { allocateAddress } from "./allocate.js";
import {
  createCa,
  createKeyPair,
  publicKeyPem,
  readCertificate,
  signCertificate,
  type CertificateFacts,
} from "./cert-tool.js";
import { rekeyCandidates } from "./health.js";

export type { CertificateFacts } from "./cert-tool.js";
export { readCertificate } from "./cert-tool.js";
export { decodeNebulaFacts, encodeNebulaFacts, type PublishedNebulaFacts } from "./published.js";
export { nebulaStatus, type NebulaStatus } from "./status.js";
export {
  rekeyCandidates,
  assessCertificates,
  formatDuration,
  type CertEntry,
  type CertLevel,
  type CertReport,
  type CertStatus,
} from "./health.js";

/** Where hosts keep their Nebula key pair by default. */
export const DEFAULT_KEY_DIR = "/var/lib/ogygia/nebula";

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if (hasErrorCode(err, "ENOENT")) return false;
    throw err;
  }
}

function checkDuration(duration: string | undefined): void {
  if (duration !== undefined && !/^(\d+(\.\d+)?(h|m|s|ms))+$/.test(duration)) {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `--duration ${JSON.stringify(duration)} is not a duration like 8760h or 90m`,
      { exitCode: 2 },
    );
  }
}

// ---------------------------------------------------------------- ca init

export interface CaInitResult {
  crt: string;
  key: string;
  facts: CertificateFacts;
}

export async function nebulaCaInit(options: {
  name: string;
  duration?: string;
  dir: string;
}): Promise<CaInitResult> {
  checkDuration(options.duration);
  const crt = path.join(options.dir, "ca.crt");
  const key = path.join(options.dir, "ca.key");
  for (const file of [crt, key]) {
    if (await exists(file)) {
      throw new OgygiaError("ERR_OGYGIA_NEBULA", `${file} exists; a CA is never overwritten`, {
        hint: "Move it away first if you really mean to replace the CA (every host then needs a new certificate).",
      });
    }
  }
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  await createCa({ name: options.name, duration: options.duration, crt, key });
  await chmod(key, 0o600);
  await chmod(crt, 0o644);
  return { crt, key, facts: await readCertificate(crt) };
}

// ---------------------------------------------------------------- keygen

export interface KeygenResult {
  key: string;
  pub: string;
  /** The public key (PEM), safe to print and send. */
  publicKey: string;
  /** False when the pair existed and was kept. */
  created: boolean;
}

export async function nebulaKeygen(options: { dir: string }): Promise<KeygenResult> {
  const key = path.join(options.dir, "host.key");
  const pub = path.join(options.dir, "host.pub");
  let created = false;
  if (!(await exists(key))) {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    // Made beside and renamed, so that an interrupted run leaves no half pair.
    const tmpKey = `${key}.tmp-${process.pid}`;
    const tmpPub = `${pub}.tmp-${process.pid}`;
    await rm(tmpKey, { force: true });
    await rm(tmpPub, { force: true });
    await createKeyPair(tmpKey, tmpPub);
    await chmod(tmpKey, 0o600);
    await chmod(tmpPub, 0o644);
    await rename(tmpPub, pub);
    await rename(tmpKey, key);
    created = true;
  } else if (!(await exists(pub))) {
    throw new OgygiaError("ERR_OGYGIA_NEBULA", `${key} exists but ${pub} does not`, {
      hint: "Restore host.pub from a backup, or move host.key away to make a new pair.",
    });
  }
  return { key, pub, publicKey: await readFile(pub, "utf8"), created };
}

// ---------------------------------------------------------------- sign

export interface SignRequest {
  host: string;
  /** The host's public key file (from `keygen`). */
  pub: string;
  /** `auto` or `a.b.c.d/bits`. */
  ip: string;
  groups: string[];
  duration?: string;
  config: OgygiaConfig | undefined;
  /** Overrides `[ogygia.nebula] ca_dir`. */
  caDir?: string;
  /** Overrides `[ogygia.nebula] cert_dir`. */
  outDir?: string;
}

export interface SignResult {
  host: string;
  address: string;
  /** True when the host kept the address the registry had for it. */
  kept: boolean;
  certificate: string;
  facts: CertificateFacts;
}

/** `<namespace's parent>/nebula/<network>`: beside the versions namespace, never inside it. */
export function registryPrefix(namespace: string, network: string): string {
  const parent = namespace.slice(0, namespace.lastIndexOf("/"));
  return `${parent}/nebula/${network}`;
}

function subnetOf(config: OgygiaConfig | undefined): Ipv4Network {
  const text = config?.nebula?.subnet;
  if (text === undefined) {
    throw new OgygiaError("ERR_OGYGIA_NEBULA", "--ip auto needs [ogygia.nebula] subnet", {
      hint: 'Add subnet = "10.42.0.0/16" (your mesh\'s network) under [ogygia.nebula].',
    });
  }
  const subnet = parseSubnet(text);
  if (typeof subnet === "string") {
    throw new OgygiaError("ERR_OGYGIA_CONFIG_INVALID", `[ogygia.nebula] subnet: ${subnet}`);
  }
  return subnet;
}

export async function nebulaSign(request: SignRequest): Promise<SignResult> {
  checkDuration(request.duration);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(request.host)) {
    throw new OgygiaError(
      "ERR_OGYGIA_USAGE",
      `${JSON.stringify(request.host)} is not a host name`,
      {
        exitCode: 2,
      },
    );
  }
  for (const group of request.groups) {
    if (!/^[A-Za-z0-9_.-]+$/.test(group)) {
      throw new OgygiaError("ERR_OGYGIA_USAGE", `group ${JSON.stringify(group)} is not a name`, {
        exitCode: 2,
      });
    }
  }
  const config = request.config;
  const caDir = request.caDir ?? config?.nebula?.caDir ?? "nebula-ca";
  const outDir = request.outDir ?? config?.nebula?.certDir ?? "nebula";
  // Everything that can be checked here is, before an address is taken.
  for (const file of [request.pub, path.join(caDir, "ca.crt"), path.join(caDir, "ca.key")]) {
    if (!(await exists(file))) {
      throw new OgygiaError("ERR_OGYGIA_NEBULA", `${file} does not exist`, {
        hint:
          file === request.pub
            ? "Make the host's pair with `ogygia nebula keygen` on the host and copy its host.pub here."
            : "Make the CA with `ogygia nebula ca init`, or name its folder with --ca.",
      });
    }
  }
  const network = subnetOf(config);

  let requested: number | undefined;
  if (request.ip !== "auto") {
    const cidr = parseCidr(request.ip);
    if (cidr === undefined) {
      throw new OgygiaError(
        "ERR_OGYGIA_USAGE",
        `--ip ${JSON.stringify(request.ip)} must be auto or an address like 10.42.0.7/16`,
        { exitCode: 2 },
      );
    }
    if (cidr.bits !== network.bits) {
      throw new OgygiaError(
        "ERR_OGYGIA_USAGE",
        `--ip ${request.ip}: the mesh's prefix is /${network.bits}`,
        { exitCode: 2 },
      );
    }
    requested = cidr.address;
  }

  const selected = config && configuredBackend(config);
  if (!config || !selected) {
    throw new OgygiaError(
      "ERR_OGYGIA_NEBULA",
      "signing needs the fleet registry to hand out addresses, and no backend is configured",
      { hint: "Configure [ogygia.etcd] or [ogygia.zookeeper] on this machine." },
    );
  }
  const coordinator = await openCoordinator(selected.entry.kind, selected.settings);
  let allocation;
  try {
    allocation = await allocateAddress({
      coordinator,
      prefix: registryPrefix(selected.settings.namespace, config.nebula?.network ?? "ogygia"),
      network,
      host: request.host,
      requested,
      timeoutMs: selected.settings.timeoutSeconds * 1000,
    });
  } finally {
    await coordinator.close();
  }
  const address = formatIpv4(allocation.address);
  const written = await writeSignedCertificate({
    caDir,
    outDir,
    pub: request.pub,
    name: request.host,
    ip: `${address}/${network.bits}`,
    groups: request.groups,
    duration: request.duration,
  });
  return {
    host: request.host,
    address: `${address}/${network.bits}`,
    kept: allocation.kept,
    certificate: written.certificate,
    facts: written.facts,
  };
}

/**
 * Signs with nebula-cert into `outDir`, beside under a temporary name, then
 * renamed to `<name>-<hash of its bytes>.crt`: a folder meant to be
 * committed never holds a half-written certificate.
 */
async function writeSignedCertificate(options: {
  caDir: string;
  outDir: string;
  pub: string;
  name: string;
  ip: string;
  groups: readonly string[];
  duration: string | undefined;
}): Promise<{ certificate: string; facts: CertificateFacts }> {
  await mkdir(options.outDir, { recursive: true });
  const tmp = path.join(options.outDir, `.${options.name}.crt.tmp-${process.pid}`);
  await rm(tmp, { force: true });
  try {
    await signCertificate({
      caCrt: path.join(options.caDir, "ca.crt"),
      caKey: path.join(options.caDir, "ca.key"),
      publicKey: options.pub,
      name: options.name,
      ip: options.ip,
      groups: options.groups,
      duration: options.duration,
      out: tmp,
    });
    const bytes = await readFile(tmp);
    const digest = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
    const certificate = path.join(options.outDir, `${options.name}-${digest}.crt`);
    await chmod(tmp, 0o644);
    await rename(tmp, certificate);
    return { certificate, facts: await readCertificate(certificate) };
  } finally {
    await rm(tmp, { force: true });
  }
}

// ---------------------------------------------------------------- rekey

/** A Go duration (`720h`, `1h30m`, `90s`) in milliseconds; undefined when it is not one. */
export function parseGoDuration(text: string): number | undefined {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  const match = /^(\d+(?:\.\d+)?(?:h|ms|m|s))+$/.exec(text);
  if (match === null) return undefined;
  let total = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s)/g)) {
    total += Number(part[1]) * (units[part[2] ?? ""] ?? NaN);
  }
  return Number.isFinite(total) ? total : undefined;
}

export interface RekeyChange {
  host: string;
  address: string | null;
  groups: string[];
  /** The certificate renewed (removed once the new one is written). */
  old: string;
  oldNotAfter: string;
  remainingMs: number;
  /** The new certificate; null on a dry run. */
  certificate: string | null;
  notAfter: string | null;
}

export interface RekeyResult {
  certDir: string;
  changes: RekeyChange[];
  /** Files of the folder that are not readable certificates. */
  skipped: { file: string; reason: string }[];
}

/** Reads every `*.crt` of `dir` (CA certificates included; the caller filters). */
export async function readCertificateFolder(dir: string): Promise<{
  certificates: { file: string; facts: CertificateFacts }[];
  skipped: { file: string; reason: string }[];
}> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new OgygiaError(
      "ERR_OGYGIA_NEBULA",
      `cannot read the certificate folder ${dir}: ${(err as Error).message}`,
      {
        hint: "Name it with --certs, or set [ogygia.nebula] cert_dir.",
        cause: err,
      },
    );
  }
  const certificates: { file: string; facts: CertificateFacts }[] = [];
  const skipped: { file: string; reason: string }[] = [];
  for (const name of names.sort()) {
    if (!name.endsWith(".crt") || name.startsWith(".")) continue;
    const file = path.join(dir, name);
    try {
      certificates.push({ file, facts: await readCertificate(file) });
    } catch (err) {
      if (!(err instanceof OgygiaError)) throw err;
      skipped.push({ file, reason: err.message });
    }
  }
  return { certificates, skipped };
}

/**
 * Renews the certificates of the folder nearing expiry (see
 * `rekeyCandidates`) with the same name, address and groups, for the same
 * lifetime as before unless `duration` says otherwise; the public key is
 * the certificate's own, so no host key is needed. The old file is removed
 * once the new one is written. The address stays the host's in the
 * registry: rekeying takes none.
 */
export async function nebulaRekey(options: {
  config: OgygiaConfig | undefined;
  caDir?: string | undefined;
  certDir?: string | undefined;
  withinMs?: number | undefined;
  duration?: string | undefined;
  dryRun: boolean;
  now: number;
}): Promise<RekeyResult> {
  checkDuration(options.duration);
  const caDir = options.caDir ?? options.config?.nebula?.caDir ?? "nebula-ca";
  const certDir = options.certDir ?? options.config?.nebula?.certDir ?? "nebula";
  const { certificates, skipped } = await readCertificateFolder(certDir);
  const due = rekeyCandidates(certificates, { now: options.now, withinMs: options.withinMs });
  if (!options.dryRun && due.length > 0) {
    for (const file of [path.join(caDir, "ca.crt"), path.join(caDir, "ca.key")]) {
      if (!(await exists(file))) {
        throw new OgygiaError("ERR_OGYGIA_NEBULA", `${file} does not exist`, {
          hint: "Rekeying signs with the CA: name its folder with --ca, or run with --dry-run.",
        });
      }
    }
  }
  const changes: RekeyChange[] = [];
  const keys =
    due.length > 0 && !options.dryRun
      ? await mkdtemp(path.join(os.tmpdir(), "ogygia-rekey-"))
      : undefined;
  try {
    for (const cert of due) {
      const { facts } = cert;
      const change: RekeyChange = {
        host: facts.name,
        address: facts.ips[0] ?? null,
        groups: facts.groups,
        old: cert.file,
        oldNotAfter: facts.notAfter,
        remainingMs: cert.remainingMs,
        certificate: null,
        notAfter: null,
      };
      if (keys !== undefined && change.address !== null) {
        const pub = path.join(keys, `${facts.fingerprint}.pub`);
        await writeFile(pub, publicKeyPem(facts.publicKey), { mode: 0o600 });
        const lifetimeSeconds = Math.max(
          1,
          Math.round((Date.parse(facts.notAfter) - Date.parse(facts.notBefore)) / 1000),
        );
        const written = await writeSignedCertificate({
          caDir,
          outDir: certDir,
          pub,
          name: facts.name,
          ip: change.address,
          groups: facts.groups,
          duration: options.duration ?? `${lifetimeSeconds}s`,
        });
        if (path.resolve(written.certificate) !== path.resolve(cert.file))
          await rm(cert.file, { force: true });
        change.certificate = written.certificate;
        change.notAfter = written.facts.notAfter;
      }
      changes.push(change);
    }
  } finally {
    if (keys !== undefined) await rm(keys, { recursive: true, force: true });
  }
  return { certDir, changes, skipped };
}
