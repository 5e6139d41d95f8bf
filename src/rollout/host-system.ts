/**
 * What the agent does to its host, at the platform edge: realise a system
 * path through the substituters (signatures required), run a system's
 * `bin/switch-to-configuration`, and set the system profile. Under
 * `--root` (tests, images) the root is a chroot store and the state links
 * live under it; on a host the root is `/`.
 */

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  openSync,
  readSync,
  unlinkSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";

import { OgygiaError, hasErrorCode } from "../core/index.js";
import { openStoreDb } from "../nix/index.js";
import { STATE_PATHS, readSystemPath } from "../system/index.js";

export interface CommandResult {
  code: number | null;
  output: string;
}

/** How much of a program's output is kept (its end). */
const OUTPUT_TAIL = 8192;
let outputFiles = 0;

/**
 * Opens a new temporary file for a program's output and unlinks it at once
 * (the open descriptor stays valid): created exclusively, never through a
 * link someone left under its name.
 */
function openOutputFile(): number {
  for (let attempt = 0; ; attempt++) {
    const file = path.join(
      os.tmpdir(),
      `ogygia-output-${process.pid}-${(outputFiles++).toString(36)}-${randomBytes(4).toString("hex")}`,
    );
    try {
      const fd = openSync(
        file,
        fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL,
        0o600,
      );
      unlinkSync(file);
      return fd;
    } catch (err) {
      if (!hasErrorCode(err, "EEXIST") || attempt >= 10) throw err;
    }
  }
}

/** The last `OUTPUT_TAIL` bytes written to `fd`, as text. */
function readTail(fd: number): string {
  const size = fstatSync(fd).size;
  const length = Math.min(size, OUTPUT_TAIL);
  const buf = Buffer.alloc(length);
  const read = length > 0 ? readSync(fd, buf, 0, length, size - length) : 0;
  return buf.toString("utf8", 0, read);
}

/**
 * Runs a program; never throws for its exit code. Output (stdout and
 * stderr, in the order written) keeps the last 8 KiB. It goes to an
 * unlinked temporary file read once the program ends, not to pipes: no
 * streams to read while it runs, which in a busy agent process cost as much
 * as the spawn itself, and a program that leaves a daemon holding its
 * output open does not keep this call waiting.
 */
export function runProgram(
  program: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<CommandResult> {
  return new Promise((resolve) => {
    let fd: number;
    try {
      fd = openOutputFile();
    } catch (err) {
      resolve({
        code: null,
        output: `cannot open a file for the output: ${(err as Error).message}`,
      });
      return;
    }
    let done = false;
    const finish = (code: number | null, note: string | null): void => {
      if (done) return;
      done = true;
      let output: string;
      try {
        output = readTail(fd);
      } catch (err) {
        output = `(output unreadable: ${(err as Error).message})`;
      } finally {
        closeSync(fd);
      }
      resolve({
        code,
        output: note === null || output === "" ? (note ?? output) : `${output}\n${note}`,
      });
    };
    let child;
    try {
      child = spawn(program, args, { env: options.env, stdio: ["ignore", fd, fd] });
    } catch (err) {
      finish(null, (err as Error).message);
      return;
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.once("error", (err) => {
      clearTimeout(timer);
      finish(null, err.message);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      finish(code, signal === null ? null : `killed by ${signal}`);
    });
  });
}

/** The store `nix` commands act on: the local store, or the chroot store at `root`. */
function storeArgs(root: string): string[] {
  return root === "/" ? [] : ["--store", path.resolve(root)];
}

export interface RealiseOptions {
  root: string;
  substituters: readonly string[];
  trustedPublicKeys: readonly string[];
  timeoutMs: number;
}

/**
 * Whether `system` is valid in the store under `root`, from its database
 * (read-only: no process to start); undefined when the database cannot be
 * read (a store only the daemon reads, a busy database, ...).
 */
function validInStoreDb(root: string, system: string): boolean | undefined {
  try {
    // A short busy wait: the call blocks the event loop; a busy database falls back.
    const store = openStoreDb({ root: path.resolve(root), busyTimeoutMs: 50 });
    try {
      return store.isValidPath(system);
    } finally {
      store.close();
    }
  } catch (err) {
    if (err instanceof OgygiaError && err.code === "ERR_OGYGIA_NIX_DB") return undefined;
    throw err;
  }
}

/**
 * Makes `system` valid in the host's store, trying each substituter in
 * turn with `nix copy` and `require-sigs`: a path no trusted key signed is
 * refused by Nix before anything of it reaches the store. A path already
 * valid is left as it is (asked of the store database, else of
 * `nix-store --check-validity`).
 */
export async function realise(system: string, options: RealiseOptions): Promise<void> {
  const store = storeArgs(options.root);
  const known = validInStoreDb(options.root, system);
  if (known === true) return;
  if (known === undefined) {
    const valid = await runProgram("nix-store", [...store, "--check-validity", system], {
      timeoutMs: options.timeoutMs,
    });
    if (valid.code === 0) return;
  }
  const failures: string[] = [];
  for (const substituter of options.substituters) {
    const args = [
      "copy",
      "--from",
      substituter,
      ...(options.root === "/" ? [] : ["--to", path.resolve(options.root)]),
    ];
    args.push("--option", "require-sigs", "true");
    if (options.trustedPublicKeys.length > 0) {
      args.push("--option", "trusted-public-keys", options.trustedPublicKeys.join(" "));
    }
    const result = await runProgram("nix", [...args, system], { timeoutMs: options.timeoutMs });
    if (result.code === 0) return;
    const line = result.output
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("copying"))
      .slice(-2)
      .join(" ");
    const unsigned = /lacks a valid signature|no signature is trusted|not signed/i.test(
      result.output,
    );
    failures.push(`${substituter}: ${unsigned ? "not signed by a trusted key: " : ""}${line}`);
  }
  if (options.substituters.length === 0) failures.push("no substituters configured");
  throw new OgygiaError("ERR_OGYGIA_UPDATE", `cannot realise ${system}: ${failures.join("; ")}`, {
    hint: "check [ogygia.update] substituters and trusted_public_keys",
  });
}

/** Runs `<system>/bin/switch-to-configuration <action>` under `root`. */
export async function switchTo(
  root: string,
  system: string,
  action: "test" | "switch" | "boot",
  timeoutMs: number,
): Promise<void> {
  const script = path.join(path.resolve(root), system, "bin/switch-to-configuration");
  const env: NodeJS.ProcessEnv = { ...process.env, OGYGIA_ROOT: path.resolve(root) };
  const result = await runProgram(script, [action], { env, timeoutMs });
  if (result.code !== 0) {
    throw new OgygiaError(
      "ERR_OGYGIA_UPDATE",
      `${system}/bin/switch-to-configuration ${action} failed (${result.code ?? "no exit code"}): ${result.output.trim().split("\n").slice(-2).join(" ")}`,
    );
  }
}

/** The system store path a state runs (null when unknown). */
export function systemOf(root: string, state: "current" | "booted" | "nextboot"): string | null {
  return readSystemPath(root, state).storePath;
}

/**
 * Points the system profile at `system`, as a new generation:
 * `nix-env --profile /nix/var/nix/profiles/system --set <system>` (with
 * `--store <root>` under a root). Nothing is done when it already does.
 */
export async function setSystemProfile(
  root: string,
  system: string,
  timeoutMs: number,
): Promise<void> {
  if (systemOf(root, "nextboot") === system) return;
  const profile = path.join(path.resolve(root), STATE_PATHS.nextboot);
  const result = await runProgram(
    "nix-env",
    [...storeArgs(root), "--profile", profile, "--set", system],
    { timeoutMs },
  );
  if (result.code !== 0) {
    throw new OgygiaError(
      "ERR_OGYGIA_UPDATE",
      `cannot set the system profile ${profile} to ${system}: ${result.output.trim()}`,
    );
  }
}
