/**
 * Host name detection, in the reference order: `$OGYGIA_HOSTNAME`,
 * `hostname -f`, `$HOSTNAME`, `hostname`, then the gethostname() system call.
 *
 * `hostname -f`'s answer is read from /etc/hosts without starting the
 * program when the resolver's configuration provably makes it that line's
 * name (`hosts-file.ts`); it is then still reported as "hostname -f": the
 * same answer by the same rules.
 */

import { readFileSync } from "node:fs";

import { canonicalNameFromSystemFiles } from "./hosts-file.js";

export type HostnameSource =
  "OGYGIA_HOSTNAME" | "hostname -f" | "HOSTNAME" | "hostname" | "gethostname";

export interface DetectedHostname {
  hostname: string;
  source: HostnameSource;
}

/** `hostname -f` may wait on DNS; a slow resolver must not stall the CLI. */
const COMMAND_TIMEOUT_MS = 2000;

export interface HostnameEnvironment {
  env: NodeJS.ProcessEnv;
  /** Runs `hostname` with the given arguments; resolves to its trimmed output or undefined. */
  run: (args: string[]) => Promise<string | undefined>;
  gethostname: () => string | Promise<string>;
}

/**
 * The kernel's host name, gethostname()'s answer, read from
 * /proc/sys/kernel/hostname (what glibc's gethostname() and `os.hostname()`
 * return on Linux); undefined where that file cannot be read. Loading
 * node:os for it cost every start of the CLI about 0.4 ms.
 */
function kernelHostname(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/hostname", "latin1").trim() || undefined;
  } catch {
    return undefined;
  }
}

/** What `hostname` prints with `args`: for `-f`, from /etc/hosts when that decides it. */
function runHostname(args: string[]): Promise<string | undefined> {
  if (args.length === 1 && args[0] === "-f") {
    const name = kernelHostname();
    const fromFiles = name === undefined ? undefined : canonicalNameFromSystemFiles(name);
    if (fromFiles !== undefined) return Promise.resolve(fromFiles);
  }
  return spawnHostname(args);
}

/**
 * Runs `hostname` with `args`; its trimmed output, or undefined when it fails.
 * node:child_process is loaded only then: most starts answer from /etc/hosts,
 * and loading it (with net, dgram and streams) costs every start of the CLI a
 * few milliseconds. The CLI's bundle compiles this `import()` of a built-in
 * module to a `require` (scripts/bundle-cli.js).
 */
export async function spawnHostname(args: string[]): Promise<string | undefined> {
  const { execFile } = await import("node:child_process");
  return new Promise((resolve) => {
    execFile(
      "hostname",
      args,
      { timeout: COMMAND_TIMEOUT_MS, encoding: "utf8", windowsHide: true },
      (err, stdout) => {
        // Any failure (missing binary, non-zero exit, timeout) moves on to the next source.
        resolve(err ? undefined : stdout.trim() || undefined);
      },
    );
  });
}

const defaultEnvironment: HostnameEnvironment = {
  env: process.env,
  run: runHostname,
  gethostname: async () => kernelHostname() ?? (await import("node:os")).hostname(),
};

function fromEnv(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === "" ? undefined : value;
}

/** Detects this host's name; never fails (gethostname always answers). */
export async function detectHostname(
  overrides: Partial<HostnameEnvironment> = {},
): Promise<DetectedHostname> {
  const environment = { ...defaultEnvironment, ...overrides };
  const { env, run } = environment;
  const override = fromEnv(env, "OGYGIA_HOSTNAME");
  if (override) return { hostname: override, source: "OGYGIA_HOSTNAME" };
  const fqdn = await run(["-f"]);
  if (fqdn) return { hostname: fqdn, source: "hostname -f" };
  const shellName = fromEnv(env, "HOSTNAME");
  if (shellName) return { hostname: shellName, source: "HOSTNAME" };
  const short = await run([]);
  if (short) return { hostname: short, source: "hostname" };
  return { hostname: await environment.gethostname(), source: "gethostname" };
}
