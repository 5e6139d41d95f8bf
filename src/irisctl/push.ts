/**
 * `ogygia iris push`: make store paths available to the fleet. For the
 * closure of the given paths, sign what lacks the given key's signature
 * (with `nix store sign`, so Nix itself records it), then ask the local
 * `ogygia-irisd` to index the closure at once.
 */

import { execFile } from "node:child_process";
import { realpath } from "node:fs/promises";

import { OgygiaError, errorMessage, escapeForTerminal, hasErrorCode } from "../core/index.js";
import {
  DEFAULT_STORE_DIR,
  createTrustedKeys,
  openStoreDb,
  parseStorePath,
  pathFingerprint,
  readSecretKeyFile,
  realStoreDir,
  storeLocation,
  verifyFingerprint,
  type PathInfo,
  type SecretKey,
  type StoreDb,
} from "../nix/index.js";
import { requestRescan, type RescanAnswer } from "./client.js";

/** How many paths one `nix store sign` call signs (keeps argument lists short). */
const SIGN_BATCH = 200;

export interface PushFailure {
  /** The store path, or the argument as given when it names no store path. */
  path: string;
  error: string;
}

export interface PushResult {
  /** Every path of the closure, sorted. */
  closure: string[];
  /** Name of the signing key, when `--sign` was given. */
  keyName: string | null;
  /** Paths signed by this run. */
  signed: string[];
  /** Paths that already carried the key's signature. */
  alreadySigned: string[];
  /** The daemon's answer, or null when nothing was left to index. */
  rescan: RescanAnswer | null;
  failed: PushFailure[];
}

export interface PushOptions {
  /** Store paths, or files linking into the store (like `./result`). */
  inputs: readonly string[];
  /** Physical root of the store (`/`, or a chroot store's directory). */
  root: string;
  /** Secret key file to sign with, if any. */
  signKeyFile?: string | undefined;
  /** The daemon to tell. */
  irisd: URL;
  /** Called with short progress messages ("signing 12/340"). */
  progress?: (message: string) => void;
  /**
   * Runs `nix` with arguments; for tests. Resolves to stderr; rejects with an
   * `OgygiaError` when the process fails (anything else is a bug).
   */
  runNix?: (args: string[]) => Promise<string>;
  /** Opens the store database under `root`; for tests. */
  openStore?: (root: string) => StoreDb;
}

const NIX_HINT =
  "`nix store sign` needs nix on PATH and write access to the store's database (root or a trusted user).";
const STORE_PATH_HINT = "Give store paths, or links into the store such as ./result.";

/** A path argument that names no store path, with the reason. */
function notAStorePath(message: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_STORE_PATH", message, { hint: STORE_PATH_HINT, cause });
}

function runNixCommand(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "nix",
      args,
      { encoding: "utf8", maxBuffer: 16 * 1024 * 1024, timeout: 10 * 60_000 },
      (err, _stdout, stderr) => {
        // execFile reports here every way the process can fail: not found
        // (ENOENT), a non-zero exit, killed by the timeout, too much output.
        if (err) {
          const detail = stderr.trim().split("\n").slice(-3).join(" ") || err.message;
          reject(new OgygiaError("ERR_OGYGIA_NIX_COMMAND", detail, { hint: NIX_HINT, cause: err }));
        } else {
          resolve(stderr);
        }
      },
    );
  });
}

/** The logical store path an argument names: a store path, a path inside one, or a link. */
async function storePathFor(input: string, root: string): Promise<string> {
  const logicalPrefix = `${DEFAULT_STORE_DIR}/`;
  const firstComponent = (rest: string): string =>
    parseStorePath(`${logicalPrefix}${rest.split("/")[0] ?? ""}`).path;
  if (input.startsWith(logicalPrefix) && root === "/")
    return firstComponent(input.slice(logicalPrefix.length));
  let real: string;
  try {
    real = await realpath(input);
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) {
      // A logical store path under a chroot store need not exist on this machine's /nix.
      if (input.startsWith(logicalPrefix)) return firstComponent(input.slice(logicalPrefix.length));
      throw notAStorePath("no such file or store path", err);
    }
    if (hasErrorCode(err, "EACCES", "EPERM", "ELOOP", "ENAMETOOLONG")) {
      throw notAStorePath(errorMessage(err), err);
    }
    throw err;
  }
  const physicalPrefix = `${realStoreDir(storeLocation({ root }))}/`;
  if (real.startsWith(physicalPrefix)) return firstComponent(real.slice(physicalPrefix.length));
  if (input.startsWith(logicalPrefix)) return firstComponent(input.slice(logicalPrefix.length));
  throw notAStorePath(`resolves to ${real}, which is not in the store at ${physicalPrefix}`);
}

/** The closure of `roots` under the store's references, sorted. */
export function closureOf(db: StoreDb, roots: Iterable<string>): string[] {
  const seen = new Set<string>();
  const queue = [...roots];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    if (seen.has(next)) continue;
    seen.add(next);
    for (const ref of db.queryReferences(next)) if (!seen.has(ref)) queue.push(ref);
  }
  return [...seen].sort();
}

/** Whether `info` carries a signature by `key` that verifies. */
export function hasValidSignature(info: PathInfo, key: SecretKey): boolean {
  if (info.narSize <= 0) return false;
  const trusted = createTrustedKeys([key.publicKey]);
  const fingerprint = pathFingerprint(info);
  return info.sigs.some((sig) => verifyFingerprint(fingerprint, sig, trusted));
}

/**
 * Runs the push. A path's expected failure (not a store path, `nix store
 * sign` failing, not served) is reported in `failed`; a bug throws.
 */
export async function pushPaths(options: PushOptions): Promise<PushResult> {
  const runNix = options.runNix ?? runNixCommand;
  const progress = options.progress ?? (() => undefined);
  const failed: PushFailure[] = [];
  // A bad key file fails the whole run before anything is touched.
  const key =
    options.signKeyFile === undefined ? undefined : await readSecretKeyFile(options.signKeyFile);

  const roots: string[] = [];
  for (const input of options.inputs) {
    try {
      roots.push(await storePathFor(input, options.root));
    } catch (err) {
      if (!(err instanceof OgygiaError)) throw err;
      failed.push({ path: input, error: errorMessage(err) });
    }
  }

  let db: StoreDb;
  try {
    db = options.openStore ? options.openStore(options.root) : openStoreDb({ root: options.root });
  } catch (err) {
    if (!(err instanceof OgygiaError)) throw err;
    throw new OgygiaError("ERR_OGYGIA_NIX_DB", errorMessage(err), {
      hint: "Pass --store DIR for a store whose files are under DIR/nix/store.",
      cause: err,
    });
  }
  try {
    const valid = roots.filter((path) => {
      if (db.isValidPath(path)) return true;
      failed.push({ path, error: `not a valid path in the store at ${options.root}` });
      return false;
    });
    const closure = closureOf(db, valid);
    progress(`closure: ${closure.length} paths`);

    const signed: string[] = [];
    const alreadySigned: string[] = [];
    if (key) {
      const toSign = closure.filter((path) => {
        const info = db.queryPathInfo(path);
        if (info && hasValidSignature(info, key)) {
          alreadySigned.push(path);
          return false;
        }
        return true;
      });
      await signAll({
        toSign,
        keyFile: options.signKeyFile ?? "",
        root: options.root,
        runNix,
        progress,
        failed,
      });
      for (const path of toSign) {
        if (failed.some((f) => f.path === path)) continue;
        const info = db.queryPathInfo(path);
        if (info && hasValidSignature(info, key)) signed.push(path);
        else failed.push({ path, error: `no valid '${key.name}' signature after signing` });
      }
    }

    const failedPaths = new Set(failed.map((f) => f.path));
    const toIndex = closure.filter((path) => !failedPaths.has(path));
    let rescan: RescanAnswer | null = null;
    if (toIndex.length > 0) {
      progress(`asking ogygia-irisd to index ${toIndex.length} paths`);
      rescan = await requestRescan(options.irisd, toIndex);
      for (const path of rescan.notServeable) {
        failed.push({
          path,
          error: key
            ? "ogygia-irisd will not serve it (its signature is not accepted)"
            : "ogygia-irisd will not serve it: unsigned (pass --sign KEYFILE)",
        });
      }
      for (const path of rescan.missing) {
        failed.push({
          path,
          error: "ogygia-irisd does not see it in its store (is it serving another store?)",
        });
      }
    }
    return { closure, keyName: key?.name ?? null, signed, alreadySigned, rescan, failed };
  } finally {
    db.close();
  }
}

async function signAll(ctx: {
  toSign: string[];
  keyFile: string;
  root: string;
  runNix: (args: string[]) => Promise<string>;
  progress: (message: string) => void;
  failed: PushFailure[];
}): Promise<void> {
  const { toSign, root, runNix, progress, failed } = ctx;
  if (toSign.length === 0) return;
  const base = [
    "store",
    "sign",
    "--extra-experimental-features",
    "nix-command",
    "--key-file",
    ctx.keyFile,
    ...(root === "/" ? [] : ["--store", root]),
  ];
  let done = 0;
  for (let i = 0; i < toSign.length; i += SIGN_BATCH) {
    const batch = toSign.slice(i, i + SIGN_BATCH);
    progress(`signing ${done}/${toSign.length}`);
    try {
      await runNix([...base, "--", ...batch]);
    } catch (err) {
      if (!(err instanceof OgygiaError)) throw err;
      // Sign one by one to tell which path failed, and why.
      for (const path of batch) {
        try {
          await runNix([...base, "--", path]);
        } catch (err) {
          if (!(err instanceof OgygiaError)) throw err;
          failed.push({
            path,
            error: `nix store sign failed: ${escapeForTerminal(errorMessage(err))}`,
          });
        }
      }
    }
    done += batch.length;
  }
  progress(`signed ${done}/${toSign.length}`);
}

/** The result for a terminal: one line per failure on stderr, a summary on stdout. */
export function renderPushResult(
  result: PushResult,
): { stream: "stdout" | "stderr"; text: string }[] {
  const lines: { stream: "stdout" | "stderr"; text: string }[] = result.failed.map((f) => ({
    stream: "stderr",
    text: `error: ${escapeForTerminal(f.path)}: ${escapeForTerminal(f.error)}`,
  }));
  const parts = [
    `${result.closure.length} path${result.closure.length === 1 ? "" : "s"} in the closure`,
  ];
  if (result.keyName !== null) {
    parts.push(
      `${result.signed.length} signed with '${escapeForTerminal(result.keyName)}', ${result.alreadySigned.length} already signed`,
    );
  }
  if (result.rescan) {
    parts.push(
      `ogygia-irisd now serves ${result.rescan.indexed} paths (${result.rescan.added} new)`,
    );
  }
  lines.push({ stream: "stdout", text: parts.join("; ") });
  if (result.failed.length > 0) {
    lines.push({
      stream: "stderr",
      text: `${result.failed.length} of ${result.closure.length || result.failed.length} failed`,
    });
  }
  return lines;
}
