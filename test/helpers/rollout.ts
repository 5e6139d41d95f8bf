/**
 * Fixtures of the rollout tests and benchmark: test NixOS systems built with
 * real Nix (derivations whose `bin/switch-to-configuration` moves the
 * `$OGYGIA_ROOT` links and records its calls), a signed file:// binary
 * cache holding them, and host roots (chroot stores) running a base system,
 * each with `ogygia publish` and `ogygia update` as separate processes.
 */

import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { OGYGIA_BIN, baseEnv } from "./cli.js";
import { readSystemPath } from "../../src/system/index.js";
import { nix, nixEnv, runNix, uniqueSalt, type TestKeys } from "./nix.js";
import { startProcess, type ManagedProcess } from "./process.js";

export interface SystemSpec {
  /** The build-revision file's content. */
  revision: string;
  /** The configuration the system carries (sw/share/ogygia/config.toml). */
  config: string;
  /** A system whose probe fails (it carries an `unhealthy` file). */
  unhealthy?: boolean;
  /** Sign it with the cache's key (default true). */
  signed?: boolean;
  /** The kernel it boots: a name for its `kernel` link (none by default); systems differing here need a reboot. */
  kernel?: string;
}

const BUILDER = `
set -e
mkdir -p $out/bin $out/sw/share/ogygia
printf '%s\\n' "$revision" > $out/sw/share/ogygia/build-revision
printf '%s\\n' "$configText" > $out/sw/share/ogygia/config.toml
if [ "$unhealthy" = 1 ]; then echo unhealthy > $out/unhealthy; fi
if [ -n "$kernel" ]; then ln -s /nix/store/00000000000000000000000000000000-linux-$kernel/bzImage $out/kernel; fi
cat > $out/bin/switch-to-configuration <<EOF
#!/bin/sh
set -e
root="\\\${OGYGIA_ROOT:-/}"
echo "\\$(date +%s.%N) $out \\$1" >> "\\$root/switch-calls.log"
case "\\$1" in
  test|switch)
    mkdir -p "\\$root/run"
    ln -sfn $out "\\$root/run/.current-system.tmp"
    mv -T "\\$root/run/.current-system.tmp" "\\$root/run/current-system"
    ;;
esac
EOF
chmod +x $out/bin/switch-to-configuration
`;

/** Builds the systems in the machine's store; returns their paths by name. */
export async function buildSystems(
  dir: string,
  specs: Record<string, SystemSpec>,
): Promise<Record<string, string>> {
  const salt = uniqueSalt("sys");
  const builder = path.join(dir, "build-system.sh");
  await writeFile(builder, BUILDER);
  const specFile = path.join(dir, `systems-${salt}.json`);
  await writeFile(specFile, JSON.stringify(specs));
  const expr = path.join(dir, `systems-${salt}.nix`);
  await writeFile(
    expr,
    `let specs = builtins.fromJSON (builtins.readFile ${specFile});
in builtins.mapAttrs (name: s: derivation {
  name = "nixos-system-\${name}-${salt}";
  system = builtins.currentSystem;
  builder = "/bin/sh"; PATH = "/usr/bin:/bin";
  args = [ ${builder} ];
  revision = s.revision; configText = s.config;
  unhealthy = if s.unhealthy or false then "1" else "0";
  kernel = s.kernel or "";
}) specs
`,
  );
  const names = Object.keys(specs);
  const args = [expr, "--no-out-link", ...names.flatMap((n) => ["-A", n])];
  const out = (await runNix("nix-build", args)).stdout.toString("utf8").trim().split("\n");
  return Object.fromEntries(names.map((n, i) => [n, out[i] ?? ""]));
}

/** A file:// binary cache with the systems, the signed ones signed by `keys`. */
export async function makeCache(
  dir: string,
  systems: Record<string, string>,
  specs: Record<string, SystemSpec>,
  keys: TestKeys,
): Promise<{ url: string }> {
  const signed = Object.entries(systems)
    .filter(([name]) => specs[name]?.signed !== false)
    .map(([, p]) => p);
  if (signed.length > 0) {
    await nix(["store", "sign", "-r", "--key-file", keys.secretKeyFile, ...signed]);
  }
  const cache = path.join(dir, "cache");
  await nix(["copy", "--to", `file://${cache}`, ...Object.values(systems)]);
  return { url: `file://${cache}` };
}

/** A host root: a chroot store running `base`, its links as on NixOS. */
export async function makeHostRoot(root: string, base: string): Promise<void> {
  await runNix("nix", ["copy", "--no-check-sigs", "--to", root, base]);
  await runNix("nix-env", [
    "--store",
    root,
    "--profile",
    path.join(root, "nix/var/nix/profiles/system"),
    "--set",
    base,
  ]);
  await runNix("sh", [
    "-c",
    `mkdir -p "${root}/run" && ln -sfn ${base} "${root}/run/current-system" && ln -sfn ${base} "${root}/run/booted-system"`,
  ]);
}

/** The switch-to-configuration calls a root recorded: [system, action]. */
export async function switchCalls(root: string): Promise<[string, string][]> {
  const text = await readFile(path.join(root, "switch-calls.log"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [, system = "", action = ""] = l.split(" ");
      return [system, action];
    });
}

/** The configuration a test system carries, for one backend. */
export function systemConfig(options: {
  kind: string;
  endpoint: string;
  namespace: string;
  cacheUrl: string;
  publicKey: string;
  healthDeadlineSeconds?: number;
  probes?: string[];
  /** `[ogygia.update] reboot`, `reboot_window` and `reboot_command`. */
  reboot?: { policy: string; window?: string; command?: string[] };
  /** The backend's `username` and `password_file`. */
  credentials?: { username: string; passwordFile: string };
}): string {
  const probes = options.probes ?? ['test ! -e "$OGYGIA_ROOT/run/current-system/unhealthy"'];
  return [
    `[ogygia.${options.kind}]`,
    `endpoints = [${JSON.stringify(options.endpoint)}]`,
    `namespace = ${JSON.stringify(options.namespace)}`,
    "timeout_seconds = 8",
    ...(options.credentials
      ? [
          `username = ${JSON.stringify(options.credentials.username)}`,
          `password_file = ${JSON.stringify(options.credentials.passwordFile)}`,
        ]
      : []),
    "[ogygia.publish]",
    "lease_ttl_seconds = 4",
    "resync_interval_seconds = 2",
    "[ogygia.update]",
    `substituters = [${JSON.stringify(options.cacheUrl)}]`,
    `trusted_public_keys = [${JSON.stringify(options.publicKey)}]`,
    `probes = [${probes.map((p) => JSON.stringify(p)).join(", ")}]`,
    "check_units = false",
    `health_deadline_seconds = ${options.healthDeadlineSeconds ?? 4}`,
    "poll_interval_seconds = 0.2",
    ...(options.reboot
      ? [
          `reboot = ${JSON.stringify(options.reboot.policy)}`,
          ...(options.reboot.window
            ? [`reboot_window = ${JSON.stringify(options.reboot.window)}`]
            : []),
          ...(options.reboot.command
            ? [
                `reboot_command = [${options.reboot.command.map((c) => JSON.stringify(c)).join(", ")}]`,
              ]
            : []),
        ]
      : []),
    "",
  ].join("\n");
}

/** The environment of a host's ogygia processes. */
export function hostEnv(host: string): NodeJS.ProcessEnv {
  return baseEnv({ OGYGIA_HOSTNAME: host, NIX_CONFIG: nixEnv().NIX_CONFIG });
}

/** `ogygia update --root` as a separate process. */
export function startAgent(host: string, root: string, extra: string[] = []): ManagedProcess {
  return startProcess(OGYGIA_BIN, ["update", "--root", root, ...extra], { env: hostEnv(host) });
}

/** `ogygia publish --root` as a separate process. */
export function startPublisher(host: string, root: string): ManagedProcess {
  return startProcess(OGYGIA_BIN, ["publish", "--root", root, "--log-level", "warn"], {
    env: hostEnv(host),
  });
}

/** The system each state of a root runs (null when unknown). */
export function readSystemPaths(
  root: string,
): Record<"current" | "booted" | "nextboot", string | null> {
  return {
    current: readSystemPath(root, "current").storePath,
    booted: readSystemPath(root, "booted").storePath,
    nextboot: readSystemPath(root, "nextboot").storePath,
  };
}

/**
 * A reboot under `$OGYGIA_ROOT`, for `reboot_command`: the profile's system
 * becomes the booted and the current one, the call is recorded in
 * `switch-calls.log` as `<system> reboot`, and the agent that ran it is
 * killed (SIGKILL), as a reboot ends it; `keepAgent` starts it again.
 * `stuckBootloader`: every reboot boots the system the first one booted.
 */
export async function writeRebootScript(
  dir: string,
  options: { stuckBootloader?: boolean } = {},
): Promise<string> {
  const file = path.join(
    dir,
    options.stuckBootloader === true ? "stuck-reboot.sh" : "fake-reboot.sh",
  );
  // A stuck bootloader boots, at every reboot, the system the first reboot booted.
  const stuck =
    options.stuckBootloader === true
      ? `if [ -e "$root/stuck-boot" ]; then sys=$(cat "$root/stuck-boot"); else echo "$sys" > "$root/stuck-boot"; fi\n`
      : "";
  await writeFile(
    file,
    `#!/bin/sh
set -e
root="$OGYGIA_ROOT"
gen=$(readlink "$root/nix/var/nix/profiles/system")
case "$gen" in
  /*) sys="$gen" ;;
  *) sys=$(readlink "$root/nix/var/nix/profiles/$gen") ;;
esac
${stuck}echo "$(date +%s.%N) $sys reboot" >> "$root/switch-calls.log"
ln -sfn "$sys" "$root/run/.booted-system.tmp" && mv -T "$root/run/.booted-system.tmp" "$root/run/booted-system"
ln -sfn "$sys" "$root/run/.current-system.tmp" && mv -T "$root/run/.current-system.tmp" "$root/run/current-system"
kill -9 "$PPID"
`,
    { mode: 0o755 },
  );
  return file;
}

/** An agent started again whenever it dies (as after a reboot), until stopped. */
export function keepAgent(
  host: string,
  root: string,
): { starts(): number; stop(signal?: NodeJS.Signals): Promise<void> } {
  let current = startAgent(host, root);
  let starts = 1;
  const control = { stopped: false };
  void (async () => {
    for (;;) {
      await current.exited;
      if (control.stopped) return;
      starts += 1;
      current = startAgent(host, root);
    }
  })();
  return {
    starts: () => starts,
    async stop(signal) {
      control.stopped = true;
      await current.stop(signal);
    },
  };
}
