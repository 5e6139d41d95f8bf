/**
 * Probing a builder as Nix will reach it: OpenSSH with the builder's
 * published host key as the only known host, the identity file of the
 * machines file, and `$NIX_SSHOPTS` (which Nix adds to every ssh it runs),
 * then `nix-store --version` on the builder.
 */

import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { decodeHostKey, parseBuilderUri, type BuilderEntry } from "./entry.js";

export type ProbeResult = { ok: true; version: string } | { ok: false; reason: string };

export interface ProbeOptions {
  /** Identity file (`-` or undefined: ssh's default). */
  sshKey?: string | undefined;
  /** Extra ssh options, split on whitespace as Nix splits `$NIX_SSHOPTS`. */
  sshOptions?: string | undefined;
  /** The whole probe's deadline, in milliseconds. */
  timeoutMs: number;
  /** The ssh program (default: `ssh` on PATH). */
  ssh?: string;
}

/** A probe of one builder entry. */
export type Prober = (entry: BuilderEntry) => Promise<ProbeResult>;

/** Why ssh failed, from its exit code and the last thing it said. */
function failureReason(code: number | null, stderr: string, timeoutMs: number): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    // ssh's notices about known hosts are not the failure.
    .filter((l) => l !== "" && !l.startsWith("Warning: Permanently added"));
  const last = lines.at(-1) ?? "";
  if (code === null) return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  if (code === 127) return `nix-store is not on the builder's PATH${last ? ` (${last})` : ""}`;
  if (last !== "") return last.slice(0, 300);
  return `ssh exited with ${code}`;
}

/** Makes a prober; `close` removes its known-hosts files. */
export async function createProber(
  options: ProbeOptions,
): Promise<{ probe: Prober; close(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "ogygia-builders-"));
  let counter = 0;
  const probe: Prober = async (entry) => {
    const uri = parseBuilderUri(entry.uri);
    const hostKey = decodeHostKey(entry.publicHostKey);
    if (!uri || hostKey === undefined) return { ok: false, reason: "malformed entry" };
    counter += 1;
    const knownHosts = path.join(dir, `known_hosts-${counter}`);
    await writeFile(knownHosts, `${uri.address} ${hostKey}\n`);
    const timeoutSeconds = Math.max(1, Math.ceil(options.timeoutMs / 1000));
    const args = [
      "-o",
      "BatchMode=yes",
      "-o",
      `ConnectTimeout=${timeoutSeconds}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${knownHosts}`,
      "-o",
      "GlobalKnownHostsFile=/dev/null",
      "-o",
      "LogLevel=ERROR",
      ...(options.sshKey !== undefined && options.sshKey !== "-" ? ["-i", options.sshKey] : []),
      ...(options.sshOptions ?? "").split(/\s+/).filter((w) => w !== ""),
      "-T",
      `${uri.user}@${uri.address}`,
      "nix-store --version",
    ];
    try {
      return await new Promise<ProbeResult>((resolve) => {
        const child = spawn(options.ssh ?? "ssh", args, { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (c: Buffer) => {
          if (stdout.length < 4096) stdout += c.toString("utf8");
        });
        child.stderr.on("data", (c: Buffer) => {
          stderr = (stderr + c.toString("utf8")).slice(-4096);
        });
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, options.timeoutMs);
        child.once("error", (err) => {
          clearTimeout(timer);
          resolve({ ok: false, reason: `cannot run ssh: ${err.message}` });
        });
        child.once("close", (code) => {
          clearTimeout(timer);
          if (!timedOut && code === 0) {
            resolve({ ok: true, version: stdout.trim().split("\n")[0] ?? "" });
          } else {
            resolve({
              ok: false,
              reason: failureReason(timedOut ? null : code, stderr, options.timeoutMs),
            });
          }
        });
      });
    } finally {
      await rm(knownHosts, { force: true });
    }
  };
  return { probe, close: () => rm(dir, { recursive: true, force: true }) };
}
