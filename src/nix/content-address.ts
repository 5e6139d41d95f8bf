/**
 * Content addresses (the `CA` narinfo field, the `ca` database column) and
 * the store paths they imply. A path whose name really follows from its
 * content address needs no signature: anyone can check it.
 */

import { OgygiaError } from "../core/index.js";
import { formatHash, hashBytes, parseHash, type Hash } from "./hash.js";
import { DEFAULT_STORE_DIR, makeStorePath, parseStorePath, sortStorePaths } from "./store-path.js";

export type ContentAddress =
  | { readonly method: "text"; readonly hash: Hash }
  | { readonly method: "fixed"; readonly recursive: boolean; readonly hash: Hash };

function caError(text: string, reason: string): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_HASH", `invalid content address '${text}': ${reason}`);
}

/** Parses `text:sha256:<hash>`, `fixed:<algo>:<hash>` or `fixed:r:<algo>:<hash>`. */
export function parseContentAddress(text: string): ContentAddress {
  const colon = text.indexOf(":");
  if (colon < 0) throw caError(text, "expected '<text|fixed>:...'");
  const prefix = text.slice(0, colon);
  let rest = text.slice(colon + 1);
  if (prefix === "text") {
    if (!rest.includes(":")) throw caError(text, "expected 'text:<algo>:<hash>'");
    const hash = parseHash(rest);
    if (hash.algorithm !== "sha256") throw caError(text, "a text content address must use sha256");
    return { method: "text", hash };
  }
  if (prefix === "fixed") {
    const recursive = rest.startsWith("r:");
    if (recursive) rest = rest.slice(2);
    if (!rest.includes(":")) throw caError(text, "expected 'fixed:[r:]<algo>:<hash>'");
    return { method: "fixed", recursive, hash: parseHash(rest) };
  }
  throw caError(text, `unknown method '${prefix}' (expected text or fixed)`);
}

/** Renders a content address as Nix does (`<method>:[r:]<algo>:<nix32>`). */
export function formatContentAddress(ca: ContentAddress): string {
  const hash = formatHash(ca.hash, "nix32");
  if (ca.method === "text") return `text:${hash}`;
  return `fixed:${ca.recursive ? "r:" : ""}${hash}`;
}

/**
 * The store path that content address `ca`, `name` and `references` imply
 * (Nix's `makeTextPath` / `makeFixedOutputPath`), or undefined when Nix
 * admits no such path (a flat or non-SHA-256 fixed output with references).
 */
export function contentAddressedPath(
  ca: ContentAddress,
  name: string,
  references: readonly string[],
  options: { storeDir?: string; self?: string } = {},
): string | undefined {
  const storeDir = options.storeDir ?? DEFAULT_STORE_DIR;
  const self = options.self;
  const refs = sortStorePaths(references.filter((r) => r !== self));
  const hasSelf = self !== undefined && references.includes(self);
  if (ca.method === "text") {
    if (hasSelf) return undefined;
    return makeStorePath(["text", ...refs].join(":"), ca.hash, name, storeDir);
  }
  if (ca.hash.algorithm === "sha256" && ca.recursive) {
    const type = ["source", ...refs, ...(hasSelf ? ["self"] : [])].join(":");
    return makeStorePath(type, ca.hash, name, storeDir);
  }
  if (refs.length > 0 || hasSelf) return undefined;
  const inner = hashBytes(
    "sha256",
    `fixed:out:${ca.recursive ? "r:" : ""}${formatHash(ca.hash, "base16")}:`,
  );
  return makeStorePath("output:out", inner, name, storeDir);
}

/**
 * True when `storePath` really is the path its content address `ca` implies
 * (Nix's `ValidPathInfo::isContentAddressed`). A bad `ca` string is false.
 */
export function isContentAddressed(
  info: { storePath: string; ca?: string | undefined; references: readonly string[] },
  storeDir = DEFAULT_STORE_DIR,
): boolean {
  if (info.ca === undefined || info.ca === "") return false;
  let ca: ContentAddress;
  try {
    ca = parseContentAddress(info.ca);
  } catch (err) {
    if (err instanceof OgygiaError) return false;
    throw err;
  }
  const { name } = parseStorePath(info.storePath, storeDir);
  const expected = contentAddressedPath(ca, name, info.references, {
    storeDir,
    self: info.storePath,
  });
  return expected === info.storePath;
}
