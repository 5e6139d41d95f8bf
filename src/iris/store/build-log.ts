/**
 * Build logs as Nix keeps them: `<log dir>/<first two characters of the
 * derivation's base name>/<the rest>`, plain or bzip2-compressed (`.bz2`,
 * Nix 2.8's default, `compress-build-log = true`). A log is served as plain
 * text: Nix's `nix log --store http://...` asks `log/<drv base name>` and
 * prints the body, and so does `curl`.
 *
 * The decoder is seek-bzip (pure JavaScript): logs are asked for rarely and
 * are small; a compressed log larger than `MAX_COMPRESSED_LOG_BYTES` is
 * refused rather than decoded on the event loop.
 */

import { readFile, stat } from "node:fs/promises";
import path from "node:path";

import { OgygiaError, hasErrorCode } from "../../core/index.js";

/** Largest plain log served. */
export const MAX_LOG_BYTES = 64 * 1024 * 1024;
/** Largest compressed log decoded. */
export const MAX_COMPRESSED_LOG_BYTES = 8 * 1024 * 1024;

async function readIfSmall(file: string, limit: number): Promise<Buffer | undefined> {
  try {
    const { size } = await stat(file);
    if (size > limit) {
      throw new OgygiaError(
        "ERR_OGYGIA_IRISD",
        `the build log ${file} is ${size} bytes, more than the ${limit} served`,
      );
    }
    return await readFile(file);
  } catch (err) {
    if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return undefined;
    throw err;
  }
}

/**
 * The log of the derivation `drvBaseName` (`<hash>-<name>.drv`) under
 * `logDir`, decompressed; undefined when there is none.
 */
export async function readBuildLog(
  logDir: string,
  drvBaseName: string,
): Promise<Buffer | undefined> {
  const file = path.join(logDir, drvBaseName.slice(0, 2), drvBaseName.slice(2));
  const plain = await readIfSmall(file, MAX_LOG_BYTES);
  if (plain !== undefined) return plain;
  const compressed = await readIfSmall(`${file}.bz2`, MAX_COMPRESSED_LOG_BYTES);
  if (compressed === undefined) return undefined;
  // Loaded on the first compressed log: most daemons never serve one.
  const { default: bunzip } = await import("seek-bzip");
  try {
    return bunzip.decode(compressed, undefined, true);
  } catch (err) {
    throw new OgygiaError("ERR_OGYGIA_IRISD", `the build log ${file}.bz2 is not valid bzip2`, {
      cause: err,
    });
  }
}
