/**
 * Real Nix (2.8, Debian's nix-bin) for integration tests: running its
 * commands with a test configuration, building small closures with
 * references in the machine's /nix/store, copying them into chroot stores
 * under temporary folders, keys and signatures, and reference NAR dumps.
 *
 * Every Nix command run through here gets `nixEnv()`: the nix-command
 * feature, no sandbox (builders are /bin/sh) and no substituters (the public
 * cache is unreachable and costs seconds per call).
 */

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { parseStorePath } from "../../src/nix/index.js";
import { removeDir, tempDir } from "./process.js";

export const NIX_TEST_CONFIG = [
  "experimental-features = nix-command",
  "sandbox = false",
  "substituters =",
].join("\n");

/** The environment for a Nix command: PATH, HOME and the test NIX_CONFIG. */
export function nixEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    LANG: "C.UTF-8",
    NIX_CONFIG: NIX_TEST_CONFIG,
  };
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) Reflect.deleteProperty(env, key);
    else env[key] = value;
  }
  return env;
}

export interface RunNixOptions {
  /** Bytes for stdin. */
  input?: string | Buffer;
  /** Extra environment on top of `nixEnv()`. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kill after this long (default 120 s). */
  timeoutMs?: number;
  /** Resolve with the exit code instead of throwing when it is not 0. */
  allowFailure?: boolean;
  /** Receive stdout as it arrives instead of collecting it (then `stdout` is empty). */
  onStdout?: (chunk: Buffer) => void;
}

export interface NixResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs a Nix program (`nix`, `nix-store`, `nix-build`, ...) with the test
 * environment. Throws with the command and its stderr when it fails.
 */
export function runNix(
  program: string,
  args: readonly string[],
  options: RunNixOptions = {},
): Promise<NixResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      env: nixEnv(options.env),
      cwd: options.cwd,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      if (options.onStdout) options.onStdout(chunk);
      else out.push(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-65536);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const result = { code, stdout: Buffer.concat(out), stderr };
      if (code === 0 || options.allowFailure === true) {
        resolve(result);
        return;
      }
      const shown = [program, ...args].join(" ");
      reject(new Error(`${shown} failed (${code ?? signal ?? "?"}):\n${stderr}`));
    });
    child.stdin.on("error", () => undefined); // the program may exit without reading
    child.stdin.end(options.input);
  });
}

/** Runs `nix <args>` and returns its stdout as text. */
export async function nix(args: readonly string[], options: RunNixOptions = {}): Promise<string> {
  return (await runNix("nix", args, options)).stdout.toString("utf8");
}

/**
 * `nix store verify` of `paths` in `store` (their closures unless
 * `recursive: false`): each path's NAR hash against what is on disk, and a
 * signature by one of `trustedPublicKeys` (none given: only content-addressed
 * paths pass). Throws, with Nix's output, when any path fails.
 */
export async function nixVerify(options: {
  store: string;
  paths: readonly string[];
  trustedPublicKeys: readonly string[];
  recursive?: boolean;
}): Promise<void> {
  await nix([
    "store",
    "verify",
    "--store",
    options.store,
    ...(options.recursive === false ? [] : ["-r"]),
    "--option",
    "trusted-public-keys",
    options.trustedPublicKeys.join(" "),
    ...options.paths,
  ]);
}

/** `nix-store --dump <path>`: the reference NAR, in memory (small trees only). */
export async function nixDump(file: string): Promise<Buffer> {
  return (await runNix("nix-store", ["--dump", file])).stdout;
}

/** SHA-256 (hex) and size of `nix-store --dump <path>`, streamed (any size). */
export async function nixDumpDigest(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  await runNix("nix-store", ["--dump", file], {
    onStdout: (chunk) => {
      hash.update(chunk);
      size += chunk.length;
    },
  });
  return { sha256: hash.digest("hex"), size };
}

/** `nix-store --restore <target>` from NAR bytes. */
export async function nixRestore(nar: Buffer, target: string): Promise<void> {
  await runNix("nix-store", ["--restore", target], { input: nar });
}

/**
 * A salt for `buildClosure` that no earlier run used, so signatures and
 * registrations left in the machine's store by other runs cannot leak in.
 */
/** The 32-character hash part of a store path (checked: a typo fails loudly). */
export function hashPartOf(storePath: string): string {
  return parseStorePath(storePath).hashPart;
}

export function uniqueSalt(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

/** The closure built by `buildClosure`: top -> mid -> leaf. */
export interface TestClosure {
  /** A directory with `ref`, a file naming `mid`. */
  top: string;
  /** A directory with an executable `bin/run` naming `leaf`, and a symlink `leaf-link` to it. */
  mid: string;
  /** A regular file. */
  leaf: string;
  /** All three outputs. */
  paths: string[];
  /** The derivations (`.drv`, text content-addressed, referring to each other). */
  derivations: string[];
}

/**
 * Builds a three-path closure with references in the machine's /nix/store
 * (real derivations, /bin/sh builder). Different `salt`s give different
 * store paths; the same salt reuses the paths already built. `dir` holds
 * the expression.
 */
export async function buildClosure(dir: string, salt = "ogygia"): Promise<TestClosure> {
  if (!/^[A-Za-z0-9_-]+$/.test(salt)) throw new Error(`buildClosure: bad salt '${salt}'`);
  const file = path.join(dir, `closure-${salt}.nix`);
  await writeFile(
    file,
    `let
  mk = name: script: derivation {
    inherit name; system = builtins.currentSystem;
    builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ];
  };
  leaf = mk "leaf" "echo leaf-data-${salt} > $out";
  mid = mk "mid" "mkdir -p $out/bin; echo \${leaf} > $out/bin/run; chmod +x $out/bin/run; ln -s \${leaf} $out/leaf-link";
  top = mk "top" "mkdir $out; echo \${mid} > $out/ref";
in { inherit leaf mid top; }
`,
  );
  const built = await runNix("nix-build", [
    file,
    "--no-out-link",
    "-A",
    "top",
    "-A",
    "mid",
    "-A",
    "leaf",
  ]);
  const [top, mid, leaf] = built.stdout.toString("utf8").trim().split("\n");
  if (top === undefined || mid === undefined || leaf === undefined) {
    throw new Error(`nix-build printed unexpected output:\n${built.stdout.toString("utf8")}`);
  }
  const drvs = await runNix("nix-instantiate", [file, "-A", "top", "-A", "mid", "-A", "leaf"]);
  const derivations = drvs.stdout.toString("utf8").trim().split("\n");
  return { top, mid, leaf, paths: [top, mid, leaf], derivations };
}

/**
 * Adds a file or tree to the machine's store as `nix-store --add` does: a
 * content-addressed path (`fixed:r:sha256:...`) that needs no signature.
 */
export async function addToStore(file: string): Promise<string> {
  return (await runNix("nix-store", ["--add", file])).stdout.toString("utf8").trim();
}

/** A chroot store: files under `<root>/nix/store`, database under `<root>/nix/var/nix/db`. */
export interface ChrootStore {
  root: string;
  /** The logical store directory (`/nix/store`). */
  storeDir: string;
  /** Where the store's files physically are. */
  realStoreDir: string;
  dbPath: string;
  /** The `--store` argument for Nix commands. */
  storeUrl: string;
  /** Copies more paths (with their closures) in, from the machine's store; `.drv` paths as derivations. */
  copy(paths: readonly string[]): Promise<void>;
  /** Removes the whole store. */
  remove(): Promise<void>;
}

/**
 * A new chroot store in a temporary folder (or `root`), holding `paths` and
 * their closures copied from the machine's store (`nix copy --no-check-sigs`;
 * `.drv` paths are copied as derivations, not built).
 */
export async function makeChrootStore(
  paths: readonly string[],
  options: { root?: string } = {},
): Promise<ChrootStore> {
  const root = options.root ?? (await tempDir("nix-store"));
  await mkdir(root, { recursive: true });
  const store: ChrootStore = {
    root,
    storeDir: "/nix/store",
    realStoreDir: path.join(root, "nix/store"),
    dbPath: path.join(root, "nix/var/nix/db/db.sqlite"),
    storeUrl: root,
    async copy(more) {
      // Nix 2.8 reads a .drv argument as "its outputs" unless told --derivation.
      const derivations = more.filter((p) => p.endsWith(".drv"));
      const others = more.filter((p) => !p.endsWith(".drv"));
      const base = ["copy", "--no-check-sigs", "--to", root];
      if (others.length > 0) await runNix("nix", [...base, ...others]);
      if (derivations.length > 0) await runNix("nix", [...base, "--derivation", ...derivations]);
    },
    async remove() {
      await removeDir(root);
    },
  };
  await store.copy(paths);
  return store;
}

export interface TestKeys {
  name: string;
  secretKeyFile: string;
  publicKeyFile: string;
  /** `name:base64` of the 64-byte secret key. */
  secretKey: string;
  /** `name:base64` of the 32-byte public key, for `trusted-public-keys`. */
  publicKey: string;
}

/** A signing key pair made by `nix key generate-secret`, written under `dir`. */
export async function generateKeys(dir: string, name: string): Promise<TestKeys> {
  const secretKey = (await nix(["key", "generate-secret", "--key-name", name])).trim();
  const publicKey = (await nix(["key", "convert-secret-to-public"], { input: secretKey })).trim();
  const secretKeyFile = path.join(dir, `${name}.secret`);
  const publicKeyFile = path.join(dir, `${name}.public`);
  await writeFile(secretKeyFile, secretKey);
  await writeFile(publicKeyFile, publicKey);
  return { name, secretKeyFile, publicKeyFile, secretKey, publicKey };
}

/** `nix store sign -r` with a key file, in the machine's store or `store` (a chroot root). */
export async function signPaths(
  keys: TestKeys,
  paths: readonly string[],
  options: { store?: string } = {},
): Promise<void> {
  const storeArgs = options.store === undefined ? [] : ["--store", options.store];
  await nix(["store", "sign", ...storeArgs, "-r", "--key-file", keys.secretKeyFile, ...paths]);
}

/** The usual fixture of a daemon test; see `signedClosureStore`. */
export interface SignedClosureStore {
  closure: TestClosure;
  keys: TestKeys;
  store: ChrootStore;
}

/**
 * A closure salted with `name` and a key `<name>-1`, made together, and a
 * chroot store at `dir/<storeName>` holding the closure and `extraPaths`,
 * the closure signed by the key (and `extraPaths` too with `signExtra`).
 */
export async function signedClosureStore(
  dir: string,
  name: string,
  options: { storeName?: string; extraPaths?: readonly string[]; signExtra?: boolean } = {},
): Promise<SignedClosureStore> {
  const extra = options.extraPaths ?? [];
  const [closure, keys] = await Promise.all([
    buildClosure(dir, uniqueSalt(name)),
    generateKeys(dir, `${name}-1`),
  ]);
  const store = await makeChrootStore([...closure.paths, ...extra], {
    root: path.join(dir, options.storeName ?? "b"),
  });
  const signed = options.signExtra === true ? [closure.top, ...extra] : [closure.top];
  await signPaths(keys, signed, { store: store.root });
  return { closure, keys, store };
}

/** One element of `nix path-info --json --sigs` (Nix 2.8). */
export interface NixPathInfoJson {
  path: string;
  valid?: boolean;
  /** SRI, e.g. `sha256-...`. */
  narHash: string;
  narSize: number;
  references: string[];
  deriver?: string;
  registrationTime?: number;
  ultimate?: boolean;
  signatures?: string[];
  ca?: string;
}

/**
 * `nix path-info --json --sigs` for `paths` (or every valid path with `all`)
 * in `store` (a chroot root, or the machine's store). `.drv` paths are
 * queried as derivations, not as their outputs.
 */
export async function pathInfoJson(
  paths: readonly string[],
  options: { store?: string; recursive?: boolean; all?: boolean } = {},
): Promise<NixPathInfoJson[]> {
  const args = ["path-info", "--json", "--sigs"];
  if (options.store !== undefined) args.push("--store", options.store);
  if (options.recursive === true) args.push("-r");
  if (options.all === true) return JSON.parse(await nix([...args, "--all"])) as NixPathInfoJson[];
  const derivations = paths.filter((p) => p.endsWith(".drv"));
  const others = paths.filter((p) => !p.endsWith(".drv"));
  const results: NixPathInfoJson[] = [];
  if (others.length > 0) {
    results.push(...(JSON.parse(await nix([...args, ...others])) as NixPathInfoJson[]));
  }
  if (derivations.length > 0) {
    const json = await nix([...args, "--derivation", ...derivations]);
    results.push(...(JSON.parse(json) as NixPathInfoJson[]));
  }
  const seen = new Set<string>();
  return results.filter((r) => !seen.has(r.path) && seen.add(r.path));
}

/**
 * `nix copy` between stores, checking signatures against `trustedPublicKeys`
 * unless `checkSigs` is false. `from`/`to` are store URLs (`http://...`,
 * `file://...`) or chroot roots. `settings` become `--option name value`
 * (e.g. `narinfo-cache-negative-ttl: "0"`); `cacheDir` gives Nix its own
 * narinfo disk cache (XDG_CACHE_HOME; Nix keeps one for http caches), so
 * answers cached by an earlier test against the same URL cannot leak in.
 */
export async function nixCopy(options: {
  from?: string;
  to?: string;
  paths: readonly string[];
  trustedPublicKeys?: readonly string[];
  checkSigs?: boolean;
  settings?: Record<string, string>;
  cacheDir?: string;
  allowFailure?: boolean;
  timeoutMs?: number;
}): Promise<NixResult> {
  const args = ["copy"];
  if (options.from !== undefined) args.push("--from", options.from);
  if (options.to !== undefined) args.push("--to", options.to);
  if (options.checkSigs === false) args.push("--no-check-sigs");
  if (options.trustedPublicKeys !== undefined) {
    args.push("--option", "trusted-public-keys", options.trustedPublicKeys.join(" "));
  }
  for (const [name, value] of Object.entries(options.settings ?? {})) {
    args.push("--option", name, value);
  }
  return runNix("nix", [...args, ...options.paths], {
    allowFailure: options.allowFailure,
    timeoutMs: options.timeoutMs,
    env: options.cacheDir === undefined ? {} : { XDG_CACHE_HOME: options.cacheDir },
  });
}
