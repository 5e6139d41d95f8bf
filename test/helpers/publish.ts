/**
 * Fixtures for the publisher, shared by its integration tests and its
 * benchmark: fake NixOS roots whose systems carry kernel, initrd and
 * kernel-modules links (so the reboot check has something to compare), and
 * `ogygia publish` run as a separate process, as on a real host.
 */

import { mkdir, rename, symlink, unlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { OGYGIA_BIN, baseEnv } from "./cli.js";
import { removeDir, startProcess, tempDir, type ManagedProcess } from "./process.js";
import { writeConfig } from "./system-root.js";

export type StateName = "current" | "booted" | "nextboot";

export interface SystemSpec {
  /** The build-revision file's content; null for a system without one. */
  revision: string | null;
  /** Names the kernel (and its initrd and modules); a different name needs a reboot. */
  kernel?: string;
}

export interface BootRoot {
  root: string;
  /**
   * Points `state` at a new system closure, replacing the link atomically
   * (a new link renamed over the old), as switch-to-configuration and
   * nix-env do. `null` removes the link. Resolves to `performance.now()`
   * taken just before the link changed.
   */
  switchSystem(state: StateName, spec: SystemSpec | null): Promise<number>;
  remove(): Promise<void>;
}

let generation = 0;

/** A fake NixOS root with the given systems in place. */
export async function makeBootRoot(
  states: Partial<Record<StateName, SystemSpec>> = {},
): Promise<BootRoot> {
  const root = await tempDir("boot-root");
  await mkdir(path.join(root, "run"), { recursive: true });
  await mkdir(path.join(root, "nix/var/nix/profiles"), { recursive: true });
  await mkdir(path.join(root, "nix/store"), { recursive: true });

  const makeSystem = async (spec: SystemSpec): Promise<string> => {
    generation += 1;
    const name = `${String(generation).padStart(32, "0")}-nixos-system-${process.pid}-${generation}`;
    const dir = path.join(root, "nix/store", name);
    await mkdir(path.join(dir, "sw/share/ogygia"), { recursive: true });
    if (spec.revision !== null) {
      await writeFile(path.join(dir, "sw/share/ogygia/build-revision"), `${spec.revision}\n`);
    }
    const kernel = spec.kernel ?? "linux-6.6.1";
    await symlink(`/nix/store/${kernel}/bzImage`, path.join(dir, "kernel"));
    await symlink(`/nix/store/initrd-${kernel}/initrd`, path.join(dir, "initrd"));
    await symlink(`/nix/store/${kernel}-modules/lib/modules`, path.join(dir, "kernel-modules"));
    return `/nix/store/${name}`;
  };

  const replaceLink = async (link: string, target: string): Promise<number> => {
    const temp = `${link}.tmp-${process.pid}-${generation}`;
    await symlink(target, temp);
    const changedAt = performance.now();
    await rename(temp, link);
    return changedAt;
  };

  const linkPath = (state: StateName): string =>
    state === "nextboot"
      ? path.join(root, "nix/var/nix/profiles/system")
      : path.join(root, "run", state === "current" ? "current-system" : "booted-system");

  const switchSystem = async (state: StateName, spec: SystemSpec | null): Promise<number> => {
    const link = linkPath(state);
    if (spec === null) {
      const changedAt = performance.now();
      await unlink(link).catch(() => undefined);
      return changedAt;
    }
    const system = await makeSystem(spec);
    if (state === "nextboot") {
      const generationLink = `system-${generation}-link`;
      await symlink(system, path.join(root, "nix/var/nix/profiles", generationLink));
      return replaceLink(link, generationLink);
    }
    return replaceLink(link, system);
  };

  for (const [state, spec] of Object.entries(states) as [StateName, SystemSpec][]) {
    await switchSystem(state, spec);
  }
  return { root, switchSystem, remove: () => removeDir(root) };
}

/** Full 40-character revisions for publish tests. */
export const REV = {
  a: "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0",
  b: "b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3",
  c: "c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4",
  d: "d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5",
};

/** One host of `ogygia status --json`. */
export interface StatusJsonHost {
  host: string;
  displayName: string;
  current: string | null;
  booted: string | null;
  nextboot: string | null;
  online: boolean | null;
  rebootRequired: boolean | null;
  updatedAt: string | null;
}

let namespaceCounter = 0;

/** A namespace no other test of this process uses. */
export function uniqueNamespace(): string {
  namespaceCounter += 1;
  return `/publish-${process.pid}-${namespaceCounter}/versions`;
}

/** A host running A and A, with B (a new kernel) as its next boot. */
export function standardBootRoot(): Promise<BootRoot> {
  return makeBootRoot({
    current: { revision: REV.a, kernel: "linux-6.6.1" },
    booted: { revision: REV.a, kernel: "linux-6.6.1" },
    nextboot: { revision: REV.b, kernel: "linux-6.6.2" },
  });
}

/** A config file for one backend, with short timeouts for tests. */
export function publishConfig(options: {
  backend: "etcd" | "zookeeper";
  endpoint: string;
  namespace: string;
  leaseTtlSeconds?: number;
  resyncIntervalSeconds?: number;
  timeoutSeconds?: number;
}): Promise<string> {
  return writeConfig(
    [
      `[ogygia.${options.backend}]`,
      `endpoints = ["${options.endpoint}"]`,
      `namespace = "${options.namespace}"`,
      `timeout_seconds = ${options.timeoutSeconds ?? 2}`,
      "",
      "[ogygia.publish]",
      `lease_ttl_seconds = ${options.leaseTtlSeconds ?? 2}`,
      `resync_interval_seconds = ${options.resyncIntervalSeconds ?? 300}`,
      "",
    ].join("\n"),
  );
}

/** Starts `ogygia publish` for `host`; stop it with `stop(signal)` or `kill`. */
export function startPublisher(options: {
  config: string;
  root: string;
  host: string;
  logLevel?: string;
}): ManagedProcess {
  return startProcess(
    OGYGIA_BIN,
    [
      "publish",
      "--root",
      options.root,
      "--config",
      options.config,
      "--log-level",
      options.logLevel ?? "debug",
    ],
    { env: baseEnv({ OGYGIA_HOSTNAME: options.host }), stdio: ["ignore", "pipe", "pipe"] },
  );
}
