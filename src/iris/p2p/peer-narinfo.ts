/**
 * Deciding whether a narinfo that came from a peer may be believed, and
 * turning it into ours.
 *
 * A peer's answer is accepted only when all of these hold:
 * - it is UTF-8 and parses strictly (`parseNarInfo`);
 * - its `StorePath` has the hash part that was asked for;
 * - it describes an uncompressed NAR (`Compression: none`; `FileHash` and
 *   `FileSize`, when present, equal `NarHash` and `NarSize`), or a zstd one
 *   (`Compression: zstd`, from a peer with `[server] compression = "zstd"`;
 *   `FileHash` and `FileSize`, when present, are checked on the compressed
 *   bytes, the NAR hash on what they decompress to); nothing else;
 * - it is signed by a key in `[trust] trusted_keys` (real Ed25519 over the
 *   path's fingerprint), or it is content-addressed: its path really follows
 *   from its `CA` field. A content-addressed path no trusted key signed gets
 *   its content checked too: for `fixed:r:sha256` the NAR hash must be the
 *   CA hash (checked here), for the other kinds the NAR is checked while it
 *   streams (`contentCheckFor`).
 *
 * The narinfo served to clients is re-rendered from the parsed fields with
 * our own URL, so nothing the parser did not understand is forwarded.
 */

import { createHash, type Hash as CryptoHash } from "node:crypto";

import { OgygiaError, errorMessage } from "../../core/index.js";
import {
  checkPathSignatures,
  createNarParser,
  formatHash,
  hashEquals,
  parseContentAddress,
  parseNarInfo,
  parseStorePath,
  renderNarInfo,
  signatureKeyName,
  type Hash,
  type NarInfo,
  type NarParser,
  type TrustedKeys,
} from "../../nix/index.js";
import { narUrlOf } from "../store/index.js";

export type RejectReason = "malformed" | "wrong-path" | "unsupported" | "untrusted" | "ca-mismatch";

/** How a peer serves a NAR: as it is, or zstd-compressed (with what it says of the file). */
export type PeerNarFile =
  | { compression: "none" }
  | { compression: "zstd"; fileHash?: Hash | undefined; fileSize?: number | undefined };

export type PeerNarInfoVerdict =
  | {
      ok: true;
      info: NarInfo;
      /** The file the peer serves the NAR as. */
      file: PeerNarFile;
      /** nix32 of the NAR hash, as in our URLs. */
      narHash: string;
      /** Names of the trusted keys whose signatures verified. */
      signers: string[];
      /** True when only its content address vouches for it (no trusted signature). */
      contentAddressedOnly: boolean;
    }
  | { ok: false; reason: RejectReason; message: string };

export interface VerifyOptions {
  hashPart: string;
  trusted: TrustedKeys;
  storeDir: string;
  /** Names the source in messages (the peer's redacted URL). */
  whence: string;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function reject(reason: RejectReason, message: string): PeerNarInfoVerdict {
  return { ok: false, reason, message };
}

/** Verifies narinfo bytes from a peer; never throws for bad input. */
export function verifyPeerNarInfo(bytes: Uint8Array, options: VerifyOptions): PeerNarInfoVerdict {
  const { hashPart, trusted, storeDir, whence } = options;
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return reject("malformed", `narinfo ${whence}: not UTF-8`);
  }
  let info: NarInfo;
  try {
    info = parseNarInfo(text, { storeDir, whence });
  } catch (err) {
    if (err instanceof OgygiaError) return reject("malformed", errorMessage(err));
    throw err;
  }
  if (parseStorePath(info.storePath, storeDir).hashPart !== hashPart) {
    return reject(
      "wrong-path",
      `narinfo ${whence}: StorePath ${info.storePath} does not have the hash ${hashPart} asked for`,
    );
  }
  if (info.narHash.algorithm !== "sha256") {
    return reject("unsupported", `narinfo ${whence}: NarHash is not SHA-256`);
  }
  let file: PeerNarFile;
  if (info.compression === "zstd") {
    if (info.fileHash !== undefined && info.fileHash.algorithm !== "sha256") {
      return reject("unsupported", `narinfo ${whence}: FileHash is not SHA-256`);
    }
    file = { compression: "zstd", fileHash: info.fileHash, fileSize: info.fileSize };
  } else if (info.compression === "none") {
    if (
      (info.fileHash !== undefined && !hashEquals(info.fileHash, info.narHash)) ||
      (info.fileSize !== undefined && info.fileSize !== info.narSize)
    ) {
      return reject("unsupported", `narinfo ${whence}: FileHash/FileSize differ from the NAR's`);
    }
    file = { compression: "none" };
  } else {
    return reject(
      "unsupported",
      `narinfo ${whence} for ${info.storePath}: Compression ${info.compression} is not ` +
        `supported (irisd reads NARs from peers as "none" or "zstd")`,
    );
  }
  let verdict;
  try {
    verdict = checkPathSignatures(info, trusted, storeDir);
  } catch (err) {
    if (err instanceof OgygiaError) return reject("malformed", errorMessage(err));
    throw err;
  }
  if (!verdict.trusted) {
    const names = info.sigs.map((s) => signatureKeyName(s) ?? "?");
    return reject(
      "untrusted",
      `narinfo ${whence} for ${info.storePath}: ` +
        (names.length === 0
          ? "unsigned and not content-addressed"
          : `no valid signature by a trusted key (signed by ${names.join(", ")})`),
    );
  }
  const contentAddressedOnly = verdict.signers.length === 0;
  if (contentAddressedOnly && info.ca !== undefined) {
    const ca = parseContentAddress(info.ca);
    if (
      ca.method === "fixed" &&
      ca.recursive &&
      ca.hash.algorithm === "sha256" &&
      !hashEquals(ca.hash, info.narHash)
    ) {
      return reject(
        "ca-mismatch",
        `narinfo ${whence} for ${info.storePath}: NarHash is not the hash its CA names`,
      );
    }
  }
  return {
    ok: true,
    info,
    file,
    narHash: formatHash(info.narHash, "nix32", false),
    signers: verdict.signers,
    contentAddressedOnly,
  };
}

/** Our narinfo for a verified peer path: its fields, our `nar/<hash>-<narhash>.nar` URL. */
export function renderPeerNarInfo(info: NarInfo, storeDir: string): Buffer {
  const hashPart = parseStorePath(info.storePath, storeDir).hashPart;
  const narHash = formatHash(info.narHash, "nix32", false);
  return Buffer.from(
    renderNarInfo(
      {
        ...info,
        url: narUrlOf(hashPart, narHash),
        compression: "none",
        fileHash: info.narHash,
        fileSize: info.narSize,
      },
      { storeDir },
    ),
    "utf8",
  );
}

/** Checks a NAR's content against a content address while it streams. */
export interface ContentCheck {
  write(chunk: Buffer): void;
  /** Throws ERR_OGYGIA_NIX_NAR when the content does not have the CA hash. */
  end(): void;
}

/**
 * The streaming check a path trusted only for its content address needs,
 * or undefined when none is needed (it is signed, or its CA hash is its NAR
 * hash, already compared by `verifyPeerNarInfo`).
 */
export function contentCheckFor(
  verdict: Extract<PeerNarInfoVerdict, { ok: true }>,
  what: string,
): ContentCheck | undefined {
  const { info } = verdict;
  if (!verdict.contentAddressedOnly || info.ca === undefined) return undefined;
  const ca = parseContentAddress(info.ca);
  const fail = (detail: string): OgygiaError =>
    new OgygiaError("ERR_OGYGIA_NIX_NAR", `content of ${what} does not match its CA: ${detail}`);
  if (ca.method === "fixed" && ca.recursive) {
    if (ca.hash.algorithm === "sha256") return undefined;
    const hasher = createHash(ca.hash.algorithm);
    return {
      write: (chunk) => hasher.update(chunk),
      end() {
        if (!hasher.digest().equals(ca.hash.digest)) throw fail("the NAR hash differs");
      },
    };
  }
  // Flat fixed outputs and text paths: one regular file whose bytes have the CA hash.
  let hasher: CryptoHash | undefined;
  let failure: OgygiaError | undefined;
  const parser: NarParser = createNarParser((event) => {
    if (failure !== undefined) return;
    if (event.type === "file" && event.path.length === 0) {
      hasher = createHash(ca.hash.algorithm);
    } else if (event.type === "data") {
      hasher?.update(event.data);
    } else if (event.type === "directory" || event.type === "symlink") {
      failure = fail("it is not a single regular file");
    }
  });
  return {
    write(chunk) {
      parser.write(chunk);
    },
    end() {
      parser.end();
      if (failure !== undefined) throw failure;
      if (hasher === undefined) throw fail("it is not a single regular file");
      if (!hasher.digest().equals(ca.hash.digest)) throw fail("the file's hash differs");
    },
  };
}
