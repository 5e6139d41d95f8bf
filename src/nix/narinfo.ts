/**
 * `.narinfo` files, as Nix 2.8 reads and writes them (`nar-info.cc`).
 *
 * Rendering reproduces Nix byte for byte: fields in Nix's order (StorePath,
 * URL, Compression, FileHash, FileSize, NarHash, NarSize, References,
 * Deriver, System, Sig..., CA), hashes as `sha256:<nix32>`, references and
 * signatures sorted, Compression always present. Parsing is stricter than
 * Nix where Nix is lax by accident (repeated fields, stray text), and every
 * rejection names the line.
 */

import { OgygiaError } from "../core/index.js";
import { formatContentAddress, parseContentAddress } from "./content-address.js";
import { formatHash, parseHash, type Hash } from "./hash.js";
import {
  DEFAULT_STORE_DIR,
  parseStorePath,
  parseStorePathBaseName,
  sortStorePaths,
} from "./store-path.js";

export interface NarInfo {
  /** Full store path. */
  storePath: string;
  /** Where the (possibly compressed) NAR is, relative to the cache root. */
  url: string;
  /** `none`, `xz`, `bzip2`, `zstd`, ...; Nix assumes `bzip2` when absent. */
  compression: string;
  /** Hash of the file at `url` (equals narHash when uncompressed). */
  fileHash?: Hash | undefined;
  fileSize?: number | undefined;
  narHash: Hash;
  narSize: number;
  /** Full store paths, sorted. */
  references: string[];
  /** Full store path of the deriver. */
  deriver?: string | undefined;
  system?: string | undefined;
  /** `<key name>:<base64 signature>`, sorted and unique. */
  sigs: string[];
  /** Content address, e.g. `fixed:r:sha256:<nix32>`. */
  ca?: string | undefined;
}

export interface NarInfoParseOptions {
  storeDir?: string;
  /** Where the text came from (URL, file), for error messages. */
  whence?: string;
}

const SINGLE_FIELDS = new Set([
  "StorePath",
  "URL",
  "Compression",
  "FileHash",
  "FileSize",
  "NarHash",
  "NarSize",
  "References",
  "Deriver",
  "System",
  "CA",
]);

const FIELD_NAME = /^[A-Za-z][A-Za-z0-9-]*$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

function parseSize(value: string): number | undefined {
  if (!DECIMAL.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses narinfo text; throws ERR_OGYGIA_NIX_NARINFO naming the bad line. */
export function parseNarInfo(text: string, options: NarInfoParseOptions = {}): NarInfo {
  const storeDir = options.storeDir ?? DEFAULT_STORE_DIR;
  const whence = options.whence === undefined ? "narinfo" : `narinfo ${options.whence}`;
  let lineNumber = 0;
  const corrupt = (reason: string, cause?: unknown): OgygiaError =>
    new OgygiaError(
      "ERR_OGYGIA_NIX_NARINFO",
      lineNumber > 0 ? `${whence} line ${lineNumber}: ${reason}` : `${whence}: ${reason}`,
      { cause },
    );
  const guard = <T>(what: string, parse: () => T): T => {
    try {
      return parse();
    } catch (err) {
      if (err instanceof OgygiaError) throw corrupt(`invalid ${what}: ${err.message}`, err);
      throw err;
    }
  };

  if (text.length > 0 && !text.endsWith("\n")) {
    lineNumber = text.split("\n").length;
    throw corrupt("the last line does not end with a newline");
  }
  const seen = new Set<string>();
  let storePath: string | undefined;
  let url: string | undefined;
  let compression: string | undefined;
  let fileHash: Hash | undefined;
  let fileSize: number | undefined;
  let narHash: Hash | undefined;
  let narSize: number | undefined;
  let references: string[] = [];
  let deriver: string | undefined;
  let system: string | undefined;
  const sigs = new Set<string>();
  let ca: string | undefined;

  const lines = text.split("\n");
  lines.pop(); // the empty string after the final newline
  for (const line of lines) {
    lineNumber += 1;
    const colon = line.indexOf(": ");
    if (colon <= 0) throw corrupt("expected 'Name: value'");
    const name = line.slice(0, colon);
    const value = line.slice(colon + 2);
    if (!FIELD_NAME.test(name)) throw corrupt(`invalid field name '${name}'`);
    if (value.includes("\r")) throw corrupt("carriage return in value");
    if (SINGLE_FIELDS.has(name)) {
      if (seen.has(name)) throw corrupt(`${name} appears twice`);
      seen.add(name);
    }
    switch (name) {
      case "StorePath":
        storePath = guard("StorePath", () => parseStorePath(value, storeDir).path);
        break;
      case "URL":
        if (value === "") throw corrupt("empty URL");
        url = value;
        break;
      case "Compression":
        compression = value;
        break;
      case "FileHash":
        fileHash = guard("FileHash", () => parseHash(value, "sha256"));
        break;
      case "FileSize":
        fileSize = parseSize(value);
        if (fileSize === undefined) throw corrupt(`invalid FileSize '${value}'`);
        break;
      case "NarHash":
        narHash = guard("NarHash", () => parseHash(value, "sha256"));
        break;
      case "NarSize":
        narSize = parseSize(value);
        if (narSize === undefined) throw corrupt(`invalid NarSize '${value}'`);
        if (narSize === 0) throw corrupt("NarSize is zero");
        break;
      case "References":
        references = guard("References", () =>
          sortStorePaths(
            value
              .split(" ")
              .filter((r) => r !== "")
              .map((r) => parseStorePathBaseName(r, storeDir).path),
          ),
        );
        break;
      case "Deriver":
        if (value !== "unknown-deriver") {
          deriver = guard("Deriver", () => parseStorePathBaseName(value, storeDir).path);
        }
        break;
      case "System":
        system = value;
        break;
      case "Sig":
        if (!/^[^:\s]+:\S+$/.test(value)) throw corrupt(`invalid Sig '${value}'`);
        sigs.add(value);
        break;
      case "CA":
        // Nix reads an empty CA as none.
        if (value !== "") ca = guard("CA", () => formatContentAddress(parseContentAddress(value)));
        break;
      default:
        // Unknown fields are ignored, as Nix does (newer Nix adds fields).
        break;
    }
  }
  lineNumber = 0;
  if (storePath === undefined) throw corrupt("StorePath missing");
  if (url === undefined) throw corrupt("URL missing");
  if (narHash === undefined) throw corrupt("NarHash missing");
  if (narSize === undefined) throw corrupt("NarSize missing");
  return {
    storePath,
    url,
    compression: compression === undefined || compression === "" ? "bzip2" : compression,
    fileHash,
    fileSize,
    narHash,
    narSize,
    references,
    deriver,
    system,
    sigs: [...sigs].sort(),
    ca,
  };
}

function baseNameIn(storeDir: string, storePath: string): string {
  return parseStorePath(storePath, storeDir).baseName;
}

function renderError(info: NarInfo, reason: string): OgygiaError {
  return new OgygiaError(
    "ERR_OGYGIA_NIX_NARINFO",
    `cannot render narinfo for ${info.storePath}: ${reason}`,
  );
}

/** Renders a narinfo exactly as Nix 2.8's `NarInfo::to_string`. */
export function renderNarInfo(info: NarInfo, options: { storeDir?: string } = {}): string {
  const storeDir = options.storeDir ?? DEFAULT_STORE_DIR;
  if (info.compression === "") throw renderError(info, "Compression is empty");
  if (info.url === "") throw renderError(info, "URL is empty");
  if (info.narHash.algorithm !== "sha256") throw renderError(info, "NarHash is not SHA-256");
  if (info.fileHash !== undefined && info.fileHash.algorithm !== "sha256") {
    throw renderError(info, "FileHash is not SHA-256");
  }
  for (const [field, value] of [
    ["URL", info.url],
    ["Compression", info.compression],
    ["System", info.system ?? ""],
    ["CA", info.ca ?? ""],
    ...info.sigs.map((sig) => ["Sig", sig]),
  ] as const) {
    if (/[\n\r]/.test(value)) throw renderError(info, `${field} contains a line break`);
  }
  const lines = [
    `StorePath: ${parseStorePath(info.storePath, storeDir).path}`,
    `URL: ${info.url}`,
    `Compression: ${info.compression}`,
  ];
  if (info.fileHash !== undefined) lines.push(`FileHash: ${formatHash(info.fileHash, "nix32")}`);
  if (info.fileSize !== undefined) lines.push(`FileSize: ${info.fileSize}`);
  lines.push(`NarHash: ${formatHash(info.narHash, "nix32")}`);
  lines.push(`NarSize: ${info.narSize}`);
  const refs = sortStorePaths(info.references).map((r) => baseNameIn(storeDir, r));
  lines.push(`References: ${refs.join(" ")}`);
  if (info.deriver !== undefined) lines.push(`Deriver: ${baseNameIn(storeDir, info.deriver)}`);
  if (info.system !== undefined && info.system !== "") lines.push(`System: ${info.system}`);
  for (const sig of [...new Set(info.sigs)].sort()) lines.push(`Sig: ${sig}`);
  if (info.ca !== undefined && info.ca !== "") {
    const ca = info.ca;
    let rendered: string;
    try {
      rendered = formatContentAddress(parseContentAddress(ca));
    } catch (err) {
      if (err instanceof OgygiaError) throw renderError(info, `invalid CA '${ca}'`);
      throw err;
    }
    lines.push(`CA: ${rendered}`);
  }
  return `${lines.join("\n")}\n`;
}

/** `nar/<nix32 file hash>.nar[.ext]`: where Nix's binary cache stores a NAR. */
export function narUrlFor(fileHash: Hash, compression: string): string {
  const extension: Record<string, string> = {
    none: "",
    xz: ".xz",
    bzip2: ".bz2",
    zstd: ".zst",
    br: ".br",
    gzip: ".gz",
    lzip: ".lzip",
    lz4: ".lz4",
  };
  const suffix = extension[compression];
  if (suffix === undefined) {
    throw new OgygiaError("ERR_OGYGIA_NIX_NARINFO", `unknown compression '${compression}'`);
  }
  return `nar/${formatHash(fileHash, "nix32", false)}.nar${suffix}`;
}

/** The store-side facts a narinfo carries (a PathInfo from the store database fits). */
export interface NarInfoSource {
  storePath: string;
  narHash: Hash;
  narSize: number;
  references: readonly string[];
  deriver?: string | undefined;
  sigs: readonly string[];
  ca?: string | undefined;
}

/**
 * A narinfo for a store path. Without `file`, describes the NAR served
 * uncompressed at `nar/<nix32 nar hash>.nar` (Compression: none, FileHash
 * and FileSize equal to the NAR's), which is what Nix itself writes then.
 */
export function narInfoFromPathInfo(
  info: NarInfoSource,
  file?: { url: string; compression: string; fileHash?: Hash; fileSize?: number },
): NarInfo {
  return {
    storePath: info.storePath,
    url: file?.url ?? narUrlFor(info.narHash, "none"),
    compression: file?.compression ?? "none",
    fileHash: file === undefined ? info.narHash : file.fileHash,
    fileSize: file === undefined ? info.narSize : file.fileSize,
    narHash: info.narHash,
    narSize: info.narSize,
    references: sortStorePaths(info.references),
    deriver: info.deriver,
    sigs: [...new Set(info.sigs)].sort(),
    ca: info.ca,
  };
}
