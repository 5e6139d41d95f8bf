/**
 * Restores a NAR stream into a new directory tree, as `nix-store --restore`.
 *
 * The tree is built in a hidden sibling of the target and renamed into
 * place only when the whole archive parsed (and, when given, matched its
 * expected hash and size); on any failure the sibling is removed. Nothing is
 * written outside it: names are validated by the parser, every directory is
 * one we just created, and files are created with O_EXCL | O_NOFOLLOW.
 */

import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from "node:fs";
import path from "node:path";

import { OgygiaError, errorMessage, hasErrorCode } from "../core/index.js";
import { hashFromDigest, type Hash } from "./hash.js";
import { createNarParser, type NarEvent } from "./nar-parse.js";
import { checkNarExpectations } from "./nar-verify.js";

const CREATE_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const SLASH = Buffer.from("/");

export interface RestoreNarOptions {
  /** Named in error messages (store path, URL). */
  what?: string;
  /** Reject the archive unless its SHA-256 is this. */
  expectedHash?: Hash;
  /** Reject the archive unless it has exactly this many bytes. */
  expectedSize?: number;
}

export interface RestoreNarResult {
  narHash: Hash;
  narSize: number;
}

function narError(message: string, cause?: unknown): OgygiaError {
  return new OgygiaError("ERR_OGYGIA_NIX_NAR", message, { cause });
}

function exists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch (err) {
    if (hasErrorCode(err, "ENOENT")) return false;
    throw err;
  }
}

/**
 * Restores the NAR read from `source` to `target`, which must not exist.
 * Fails with ERR_OGYGIA_NIX_NAR and leaves nothing behind on a bad archive.
 */
export async function restoreNar(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  target: string,
  options: RestoreNarOptions = {},
): Promise<RestoreNarResult> {
  const finalPath = path.resolve(target);
  const what = options.what ?? `'${finalPath}'`;
  if (exists(finalPath)) throw narError(`cannot restore NAR to '${finalPath}': it already exists`);
  const staging = path.join(
    path.dirname(finalPath),
    `.${path.basename(finalPath)}.ogygia-restore-${randomBytes(6).toString("hex")}`,
  );
  const stagingBytes = Buffer.from(staging);
  const physical = (relative: Buffer): Buffer =>
    relative.length === 0 ? stagingBytes : Buffer.concat([stagingBytes, SLASH, relative]);

  let fd = -1;
  let current: Buffer | undefined;
  const onEvent = (event: NarEvent): void => {
    switch (event.type) {
      case "directory":
        current = event.path;
        mkdirSync(physical(event.path), 0o777);
        break;
      case "directory-end":
        break;
      case "file": {
        current = event.path;
        fd = openSync(physical(event.path), CREATE_FLAGS, 0o666);
        // As Nix: created 0666 & ~umask, then all execute bits added.
        if (event.executable) fchmodSync(fd, fstatSync(fd).mode | 0o111);
        break;
      }
      case "data": {
        let offset = 0;
        while (offset < event.data.length) {
          offset += writeSync(fd, event.data, offset, event.data.length - offset);
        }
        break;
      }
      case "file-end":
        closeSync(fd);
        fd = -1;
        break;
      case "symlink":
        current = event.path;
        symlinkSync(event.target, physical(event.path));
        break;
    }
  };

  const parser = createNarParser(onEvent, { what, maxSize: options.expectedSize });
  const hasher = createHash("sha256");
  try {
    for await (const chunk of source) {
      hasher.update(chunk);
      parser.write(chunk);
      if (options.expectedSize !== undefined && parser.bytesRead > options.expectedSize) {
        throw narError(`NAR for ${what} is longer than the expected ${options.expectedSize} bytes`);
      }
    }
    parser.end();
    const result = {
      narHash: hashFromDigest("sha256", hasher.digest()),
      narSize: parser.bytesRead,
    };
    checkNarExpectations(result, options, what);
    renameSync(staging, finalPath);
    return result;
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    rmSync(staging, { recursive: true, force: true });
    if (err instanceof OgygiaError) throw err;
    const where = current === undefined ? "" : ` (at '${current.toString("utf8")}')`;
    throw narError(
      `cannot restore NAR ${what} to '${finalPath}'${where}: ${errorMessage(err)}`,
      err,
    );
  }
}
