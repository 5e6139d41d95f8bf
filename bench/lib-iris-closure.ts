/**
 * The benchmark closure for ogygia-irisd: a few hundred store paths with
 * references, most of them small directories of small files, some holding
 * one large file, built by Nix from a generated expression (builder
 * /bin/sh, contents from /dev/urandom).
 *
 * Building takes a minute or two the first time; the expression is
 * deterministic and the result is kept as a GC root under the cache folder
 * (named by the expression's hash), so later runs find the paths already
 * valid in the machine's /nix/store and build nothing.
 */

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export const NIX_ENV: NodeJS.ProcessEnv = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: process.env.HOME ?? "/root",
  LANG: "C.UTF-8",
  NIX_CONFIG: "experimental-features = nix-command\nsandbox = false\nsubstituters =",
};

export interface ClosureSpec {
  /** Directories of small files. */
  smallPaths: number;
  /** Paths holding one large file each (and a few small ones). */
  largePaths: number;
  /** Size of the large files, cycling (bytes). */
  largeSizes: readonly number[];
}

export const DEFAULT_SPEC: ClosureSpec = {
  smallPaths: 200,
  largePaths: 24,
  largeSizes: [6, 10, 14, 18, 22].map((mib) => mib * 1024 * 1024),
};

/** Small-file sizes as found in real store paths: mostly small, a tail up to 64 KiB. */
const SMALL_SIZES = [0, 37, 120, 512, 900, 2048, 4000, 7000, 12_000, 30_000, 65_536];

export interface BenchClosure {
  /** The path that refers to every other one. */
  top: string;
  /** Every path of the closure (top included), sorted. */
  paths: string[];
  /** Sum of the NAR sizes. */
  narBytes: number;
  /** Whether this run had to build anything. */
  built: boolean;
  expressionHash: string;
}

function smallScript(index: number, deps: readonly string[]): string {
  const files = 8 + (index % 17);
  const sizes = Array.from(
    { length: files },
    (_, i) => SMALL_SIZES[(index * 7 + i * 3) % SMALL_SIZES.length] ?? 0,
  );
  return [
    "mkdir -p $out/share/doc $out/bin",
    "i=0",
    `for s in ${sizes.join(" ")}; do head -c $s /dev/urandom > $out/share/f$i; i=$((i+1)); done`,
    `head -c ${100 + index} /dev/urandom > $out/bin/tool; chmod +x $out/bin/tool`,
    "ln -s ../share/f0 $out/share/doc/link",
    `echo ${deps.map((d) => `\${${d}}`).join(" ")} > $out/share/deps`,
  ].join("; ");
}

function largeScript(index: number, size: number, deps: readonly string[]): string {
  return [
    "mkdir -p $out/lib",
    `head -c ${size} /dev/urandom > $out/lib/blob-${index}.so`,
    `head -c ${1000 + index} /dev/urandom > $out/lib/meta`,
    `echo ${deps.map((d) => `\${${d}}`).join(" ")} > $out/deps`,
  ].join("; ");
}

/** The Nix expression for `spec`. */
export function closureExpression(spec: ClosureSpec): string {
  const lines = [
    "let",
    "  mk = name: script: derivation {",
    "    inherit name; system = builtins.currentSystem;",
    '    builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ];',
    "  };",
  ];
  const names: string[] = [];
  for (let i = 0; i < spec.smallPaths; i++) {
    // Each refers to up to three earlier paths: a deep, branching graph.
    const deps = [i - 1, i - 7, i - 31].filter((d) => d >= 0).map((d) => `s${d}`);
    lines.push(`  s${i} = mk "iris-bench-small-${i}" ${JSON.stringify(smallScript(i, deps))};`);
    names.push(`s${i}`);
  }
  for (let i = 0; i < spec.largePaths; i++) {
    const size = spec.largeSizes[i % spec.largeSizes.length] ?? 1;
    const deps = spec.smallPaths > 0 ? [`s${(i * 13) % spec.smallPaths}`] : [];
    lines.push(
      `  l${i} = mk "iris-bench-large-${i}" ${JSON.stringify(largeScript(i, size, deps))};`,
    );
    names.push(`l${i}`);
  }
  lines.push(
    `  top = mk "iris-bench-top" ${JSON.stringify(`mkdir $out; echo ${names.map((n) => `\${${n}}`).join(" ")} > $out/all`)};`,
    "in top",
    "",
  );
  return lines.join("\n");
}

/** Runs `args[0]` (a Nix command) with the rest as arguments; its stdout, or an error with its stderr. */
export function nixRun(args: readonly string[], env: NodeJS.ProcessEnv = NIX_ENV): string {
  const result = spawnSync(args[0] ?? "nix", args.slice(1), {
    env,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`${args.join(" ")} failed (${result.status}):\n${result.stderr}`);
  }
  return result.stdout;
}

/** Builds (or finds) the closure; `cacheDir` holds the expression and the GC root. */
export function buildBenchClosure(
  spec: ClosureSpec = DEFAULT_SPEC,
  cacheDir = path.join(os.tmpdir(), "ogygia-bench-iris"),
): BenchClosure {
  const expression = closureExpression(spec);
  const expressionHash = createHash("sha256").update(expression).digest("hex").slice(0, 16);
  mkdirSync(cacheDir, { recursive: true });
  const file = path.join(cacheDir, `closure-${expressionHash}.nix`);
  writeFileSync(file, expression);
  const link = path.join(cacheDir, `result-${expressionHash}`);
  const dryRun = spawnSync("nix-build", [file, "--dry-run"], { env: NIX_ENV, encoding: "utf8" });
  const built = dryRun.stderr.includes("will be built");
  const top = nixRun(["nix-build", file, "--out-link", link, "--max-jobs", "4"]).trim();
  const paths = nixRun(["nix-store", "-qR", top]).trim().split("\n").sort();
  const sizes = JSON.parse(nixRun(["nix", "path-info", "--json", ...paths])) as {
    narSize: number;
  }[];
  const narBytes = sizes.reduce((sum, p) => sum + p.narSize, 0);
  return { top, paths, narBytes, built, expressionHash };
}

/** `buildBenchClosure`, saying what it is doing and what it found. */
export function announceBenchClosure(): BenchClosure {
  console.log("Building the closure (cached across runs in the machine's /nix/store)...");
  const closure = buildBenchClosure();
  const mib = (closure.narBytes / 1024 / 1024).toFixed(1);
  console.log(
    `closure: ${closure.paths.length} paths, ${mib} MiB of NARs` +
      (closure.built ? " (built now)" : " (already built)"),
  );
  return closure;
}

export interface SignedStore {
  root: string;
  publicKey: string;
}

/** A chroot store `work/<dir>` holding `top`'s closure, signed by a new key named `keyName`. */
export function signedStore(
  work: string,
  top: string,
  options: { dir: string; keyName: string },
): SignedStore {
  const secret = nixRun(["nix", "key", "generate-secret", "--key-name", options.keyName]).trim();
  const keyFile = path.join(work, "key.secret");
  writeFileSync(keyFile, secret, { mode: 0o600 });
  const publicKey = spawnSync("nix", ["key", "convert-secret-to-public"], {
    input: secret,
    env: NIX_ENV,
    encoding: "utf8",
  }).stdout.trim();
  const root = path.join(work, options.dir);
  nixRun(["nix", "copy", "--no-check-sigs", "--to", root, top]);
  nixRun(["nix", "store", "sign", "--store", root, "-r", "--key-file", keyFile, top]);
  return { root, publicKey };
}
