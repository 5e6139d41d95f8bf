/**
 * `Range` requests (RFC 9110 §14) for a representation of known size.
 *
 * Decisions, each allowed by the RFC:
 * - one `bytes` range is honoured (206), so a client can resume a NAR;
 * - a range that starts at or past the end, or a zero-length suffix
 *   (`bytes=-0`), is unsatisfiable (416 with `Content-Range: bytes * /size`);
 *   positions too large to be a size (over 15 digits) are past any end;
 * - several ranges are ignored and the whole body is sent (200): §14.2 lets
 *   a server ignore Range, and multipart/byteranges buys Nix nothing while
 *   inviting abuse (thousands of tiny ranges);
 * - an invalid ranges-specifier (`bytes=5-2`, `bytes=x`) or another unit is
 *   ignored (200), as §14.1.1 and §14.2 ask;
 * - `If-Range` with anything but our strong ETag means the whole body.
 */

export type RangeDecision =
  { kind: "full" } | { kind: "partial"; start: number; length: number } | { kind: "unsatisfiable" };

const FULL: RangeDecision = { kind: "full" };
const UNSATISFIABLE: RangeDecision = { kind: "unsatisfiable" };

/** Longer digit strings are treated as "beyond any size" rather than parsed. */
const MAX_DIGITS = 15;

function isDigits(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function toPosition(digits: string): number {
  return digits.length > MAX_DIGITS ? Infinity : Number(digits);
}

/**
 * What to send for `Range: <header>` on a body of `size` bytes. `ifRange`
 * and `etag` apply §13.1.5: a range is honoured only if `If-Range` is absent
 * or equals our (strong) entity tag.
 */
export function evaluateRange(
  header: string | undefined,
  size: number,
  ifRange?: { ifRange: string | undefined; etag: string },
): RangeDecision {
  if (header === undefined) return FULL;
  if (ifRange?.ifRange !== undefined && ifRange.ifRange.trim() !== ifRange.etag) return FULL;
  const value = header.trim();
  const equals = value.indexOf("=");
  if (equals < 0 || value.slice(0, equals).trim().toLowerCase() !== "bytes") return FULL;
  const specs = value
    .slice(equals + 1)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (specs.length !== 1) return FULL;
  const spec = specs[0] ?? "";
  const dash = spec.indexOf("-");
  if (dash < 0) return FULL;
  const first = spec.slice(0, dash);
  const last = spec.slice(dash + 1);
  if (first === "") {
    // suffix-range: the last N bytes
    if (!isDigits(last)) return FULL;
    const suffix = toPosition(last);
    if (suffix === 0 || size === 0) return UNSATISFIABLE;
    const length = Math.min(suffix, size);
    return { kind: "partial", start: size - length, length };
  }
  if (!isDigits(first) || (last !== "" && !isDigits(last))) return FULL;
  const start = toPosition(first);
  const end = last === "" ? Infinity : toPosition(last);
  if (end < start) return FULL;
  if (start >= size) return UNSATISFIABLE;
  return { kind: "partial", start, length: Math.min(end, size - 1) - start + 1 };
}
