/**
 * Continuing a NAR download from another provider: the request for the
 * bytes from `offset` on, and whether a response really carries them.
 *
 * The request is `Range: bytes=<offset>-` with `If-Range: "<nar hash>"`
 * (irisd's strong ETag for a NAR is its NAR hash). A 206 must cover exactly
 * `<offset>-<size-1>/<size>`; a 200 (the provider ignored the range) is
 * accepted too, and its first `offset` bytes are skipped. The bytes already
 * received and the new ones are verified together, so a provider cannot
 * slip in other content unnoticed.
 */

/** Request headers for the NAR from `offset` (none for the whole NAR). */
export function rangeHeaders(offset: number, narHash: string): Record<string, string> {
  if (offset === 0) return {};
  return { range: `bytes=${offset}-`, "if-range": `"${narHash}"` };
}

export type Continuation = { ok: true; skip: number } | { ok: false; reason: string };

const CONTENT_RANGE = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/;

/** `Content-Range: bytes a-b/total`, parsed; undefined when malformed. */
export function parseContentRange(
  value: string | undefined,
): { start: number; end: number; total: number } | undefined {
  if (value === undefined) return undefined;
  const match = CONTENT_RANGE.exec(value.trim());
  if (match === null) return undefined;
  const [start, end, total] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (start > end || end >= total) return undefined;
  return { start, end, total };
}

/**
 * Whether a provider's response continues a `size`-byte NAR at `offset`,
 * and how many leading body bytes to skip.
 */
export function continuationOf(options: {
  status: number;
  contentRange: string | undefined;
  contentLength: string | undefined;
  offset: number;
  size: number;
}): Continuation {
  const { status, offset, size } = options;
  const length = options.contentLength === undefined ? undefined : Number(options.contentLength);
  if (status === 200) {
    if (length !== undefined && length !== size) {
      return { ok: false, reason: `200 with ${length} bytes, the NAR has ${size}` };
    }
    return { ok: true, skip: offset };
  }
  if (status === 206) {
    const range = parseContentRange(options.contentRange);
    if (range === undefined) {
      return { ok: false, reason: `206 with a bad Content-Range '${options.contentRange ?? ""}'` };
    }
    if (range.start !== offset || range.end !== size - 1 || range.total !== size) {
      return {
        ok: false,
        reason: `206 for bytes ${range.start}-${range.end}/${range.total}, wanted ${offset}-${size - 1}/${size}`,
      };
    }
    if (length !== undefined && length !== size - offset) {
      return { ok: false, reason: `206 with ${length} bytes, wanted ${size - offset}` };
    }
    return { ok: true, skip: 0 };
  }
  return { ok: false, reason: `status ${status}` };
}
