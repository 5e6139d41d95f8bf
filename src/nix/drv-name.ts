/**
 * Package names and versions from store path names, as Nix reads them:
 * `builtins.parseDrvName` (`DrvName` in names.cc), `builtins.compareVersions`
 * (versions.cc) and the output-name stripping of `nix store diff-closures`.
 */

/** A name split as `builtins.parseDrvName` splits it. */
export interface DrvName {
  name: string;
  /** "" when the name has no version. */
  version: string;
}

function isAsciiLetter(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

function isAsciiDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/**
 * `builtins.parseDrvName`: the name is everything before the first dash
 * that is followed by a non-letter; the version is the rest.
 * `apache-httpd-2.0.48` → `apache-httpd`, `2.0.48`; `bash--1-2` → `bash`, `-1-2`.
 */
export function parseDrvName(text: string): DrvName {
  for (let i = 0; i + 1 < text.length; i++) {
    if (text.charCodeAt(i) === 0x2d && !isAsciiLetter(text.charCodeAt(i + 1))) {
      return { name: text.slice(0, i), version: text.slice(i + 1) };
    }
  }
  return { name: text, version: "" };
}

/** The next version component from `start`: a run of digits, or of other non-separators. */
function nextComponent(v: string, start: number): [string, number] {
  let p = start;
  while (p < v.length && (v[p] === "." || v[p] === "-")) p++;
  if (p >= v.length) return ["", p];
  const s = p;
  if (isAsciiDigit(v.charCodeAt(p))) {
    while (p < v.length && isAsciiDigit(v.charCodeAt(p))) p++;
  } else {
    while (p < v.length && !isAsciiDigit(v.charCodeAt(p)) && v[p] !== "." && v[p] !== "-") p++;
  }
  return [v.slice(s, p), p];
}

function asNumber(c: string): bigint | undefined {
  return c !== "" && /^[0-9]+$/.test(c) ? BigInt(c) : undefined;
}

function componentsLessThan(c1: string, c2: string): boolean {
  const n1 = asNumber(c1);
  const n2 = asNumber(c2);
  if (n1 !== undefined && n2 !== undefined) return n1 < n2;
  if (c1 === "" && n2 !== undefined) return true;
  if (c1 === "pre" && c2 !== "pre") return true;
  if (c2 === "pre") return false;
  // Nix assumes `2.3a` < `2.3.1`.
  if (n2 !== undefined) return true;
  if (n1 !== undefined) return false;
  return c1 < c2;
}

/** `builtins.compareVersions`: -1, 0 or 1. */
export function compareVersions(v1: string, v2: string): number {
  let p1 = 0;
  let p2 = 0;
  while (p1 < v1.length || p2 < v2.length) {
    const [c1, n1] = nextComponent(v1, p1);
    const [c2, n2] = nextComponent(v2, p2);
    p1 = n1;
    p2 = n2;
    if (componentsLessThan(c1, c2)) return -1;
    if (componentsLessThan(c2, c1)) return 1;
  }
  return 0;
}

const OUTPUT_SUFFIX = /^(.*)-([a-z]+|lib32|lib64)$/s;

/** A store path's package: its name and version with an output suffix (`-bin`, `-dev`) removed. */
export interface PackageName extends DrvName {
  /** The output suffix removed, or "". */
  output: string;
}

/**
 * What `nix store diff-closures` groups a path under: the output name is
 * stripped first (`(.*)-([a-z]+|lib32|lib64)`, ambiguous by Nix's own
 * admission: `system-units` becomes `system`), then `parseDrvName`.
 */
export function packageOfName(storeName: string): PackageName {
  const match = OUTPUT_SUFFIX.exec(storeName);
  const base = match?.[1] ?? storeName;
  return { ...parseDrvName(base), output: match?.[2] ?? "" };
}
