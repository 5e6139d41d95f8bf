/**
 * The publisher's side: this host's builder entry, made from
 * `[ogygia.builder]` and the host (Nix's systems, the cores, the SSH host
 * key), published at `<namespace>/<host>/builder` under a lease that lives
 * and dies with the publisher: renewed in the background, re-created when
 * lost, revoked on stop so the entry leaves the fleet at once.
 */

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";

import type { BuilderConfig } from "../config/index.js";
import { Backoff, OgygiaError, delay, errorMessage, hasErrorCode } from "../core/index.js";
import { fieldKey, type Coordinator, type Lease } from "../fleet/index.js";
import { hostKeyLine, serializeBuilderEntry, type BuilderEntry } from "./entry.js";

/** The structured logger the announcer writes to (pino's `Logger` fits). */
export interface AnnounceLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const NODE_SYSTEMS: Record<string, string> = {
  x64: "x86_64-linux",
  arm64: "aarch64-linux",
  ia32: "i686-linux",
  riscv64: "riscv64-linux",
};

/** Nix's `system` and `extra-platforms`, from `nix show-config --json`; Node's idea when Nix does not answer. */
export async function nixSystems(): Promise<string[]> {
  const fallback = [NODE_SYSTEMS[process.arch] ?? `${process.arch}-linux`];
  const out = await new Promise<string | undefined>((resolve) => {
    execFile(
      "nix",
      ["--extra-experimental-features", "nix-command", "show-config", "--json"],
      { timeout: 10_000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout) => {
        resolve(err ? undefined : stdout);
      },
    );
  });
  if (out === undefined) return fallback;
  try {
    const settings = JSON.parse(out) as Record<string, { value?: unknown } | undefined>;
    const system = settings.system?.value;
    const extra = settings["extra-platforms"]?.value;
    const systems = [
      ...(typeof system === "string" ? [system] : []),
      ...(Array.isArray(extra) ? extra.filter((s): s is string => typeof s === "string") : []),
    ];
    return systems.length > 0 ? [...new Set(systems)] : fallback;
  } catch {
    return fallback;
  }
}

/** This host's entry: `[ogygia.builder]` with its defaults filled from the host. */
export async function localBuilderEntry(
  config: BuilderConfig,
  hostname: string,
): Promise<BuilderEntry> {
  let text: string;
  try {
    text = await readFile(config.hostKeyFile, "utf8");
  } catch (err) {
    if (!hasErrorCode(err, "ENOENT", "EACCES", "EPERM", "EISDIR")) throw err;
    throw new OgygiaError(
      "ERR_OGYGIA_BUILDERS",
      `cannot read the SSH host key ${config.hostKeyFile}: ${err.code}`,
      {
        hint: "Set [ogygia.builder] host_key_file to this host's public SSH host key (…/ssh_host_ed25519_key.pub).",
        cause: err,
      },
    );
  }
  const line = hostKeyLine(text);
  if (line === undefined) {
    throw new OgygiaError(
      "ERR_OGYGIA_BUILDERS",
      `${config.hostKeyFile} is not an SSH public key (ssh-ed25519, ssh-rsa or ecdsa)`,
      { hint: "Point [ogygia.builder] host_key_file at the .pub file of sshd's host key." },
    );
  }
  return {
    uri: `${config.protocol}://${config.user}@${config.address ?? hostname}`,
    systems: config.systems ?? (await nixSystems()),
    maxJobs: config.maxJobs ?? os.availableParallelism(),
    speedFactor: config.speedFactor,
    supportedFeatures: config.supportedFeatures,
    mandatoryFeatures: config.mandatoryFeatures,
    publicHostKey: Buffer.from(line).toString("base64"),
  };
}

export interface AnnouncerOptions {
  coordinator: Coordinator;
  namespace: string;
  host: string;
  entry: BuilderEntry;
  /** The lease's TTL: the publisher's `lease_ttl_seconds`. */
  leaseTtlMs: number;
  log: AnnounceLogger;
}

/** Keeps the entry published until `stop`. */
export class BuilderAnnouncer {
  private readonly options: AnnouncerOptions;
  private readonly key: string;
  private readonly value: Uint8Array;
  private readonly stopping = new AbortController();
  private readonly backoff: Backoff;
  private running: Promise<void> | undefined;

  constructor(options: AnnouncerOptions) {
    this.options = options;
    this.key = fieldKey(options.namespace, options.host, "builder");
    this.value = Buffer.from(serializeBuilderEntry(options.entry));
    this.backoff = new Backoff({
      initialMs: 250,
      maxMs: Math.max(250, Math.min(15_000, options.leaseTtlMs / 3)),
    });
  }

  /** Starts publishing in the background. */
  start(): void {
    this.running ??= this.loop();
  }

  /** Revokes the lease (the entry leaves the fleet) and closes the coordinator. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    await this.options.coordinator.close();
  }

  /** A method, not a field read: it changes across awaits. */
  private isStopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async loop(): Promise<void> {
    const { signal } = this.stopping;
    const { coordinator, log } = this.options;
    while (!signal.aborted) {
      let lease: Lease | undefined;
      try {
        lease = await coordinator.grantLease({ ttlMs: this.options.leaseTtlMs });
        await this.put(lease);
        this.backoff.reset();
        log.info({ key: this.key, uri: this.options.entry.uri }, "builder entry published");
        await untilAborted(lease.lost, signal);
        if (this.isStopped()) {
          await lease.revoke();
          log.info({ key: this.key }, "builder entry withdrawn");
          return;
        }
        log.warn(
          { reason: errorMessage(lease.lost.reason) },
          "builder lease lost; publishing again",
        );
      } catch (err) {
        if (!(err instanceof OgygiaError)) throw err;
        lease?.revoke().catch(() => undefined);
        if (this.isStopped()) return;
        const waitMs = this.backoff.next();
        log.warn(
          { error: errorMessage(err), retryInMs: waitMs },
          "cannot publish the builder entry; retrying",
        );
        await delay(waitMs, signal);
      }
    }
  }

  /**
   * Creates the key on `lease`. A key left by an earlier run of this host
   * (its lease not yet expired) is this host's to replace.
   */
  private async put(lease: Lease): Promise<void> {
    const { coordinator } = this.options;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const read = await coordinator.get(this.key);
      if (read.entry) await coordinator.compareAndDelete(this.key, { version: read.entry.version });
      const result = await coordinator.compareAndSet(this.key, "absent", this.value, { lease });
      if (result.won) return;
    }
    throw new OgygiaError(
      "ERR_OGYGIA_FLEET_WRITE",
      `${this.key} kept coming back while the builder entry was written`,
    );
  }
}

/** Resolves once either signal aborts. */
function untilAborted(a: AbortSignal, b: AbortSignal): Promise<void> {
  if (a.aborted || b.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      a.removeEventListener("abort", done);
      b.removeEventListener("abort", done);
      resolve();
    };
    a.addEventListener("abort", done, { once: true });
    b.addEventListener("abort", done, { once: true });
  });
}
