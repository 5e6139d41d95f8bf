/**
 * The request target, decoded strictly. No URL ever names a file: handlers
 * only open store paths found in the store database. These rules are the
 * outer wall, so that odd spellings are refused early and loudly:
 *
 * - longer than `MAX_TARGET_LENGTH` → 414;
 * - absolute-form (`http://host/x`) is reduced to its path (RFC 9112 §3.2.2);
 *   anything but origin-form after that → 400;
 * - the query is ignored (Nix sends none), a fragment is refused;
 * - `%XX` escapes are decoded only when they stand for an unreserved
 *   character (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`); an escaped `/`, `%`
 *   (double encoding), control, reserved or non-ASCII byte → 400;
 * - after decoding, a `.` or `..` segment → 400 (no dot-segment removal:
 *   nothing legitimate needs it).
 */

import { HttpError, badRequest } from "./http-error.js";

/** Longest request target accepted; our longest URL is about 100 characters. */
export const MAX_TARGET_LENGTH = 1024;

function isUnreserved(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) ||
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    code === 0x2d ||
    code === 0x2e ||
    code === 0x5f ||
    code === 0x7e
  );
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

function decodeEscapes(path: string): string {
  let out = "";
  let from = 0;
  for (let i = path.indexOf("%"); i >= 0; i = path.indexOf("%", from)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) throw badRequest("malformed percent-escape in the URL");
    const code = hi * 16 + lo;
    if (!isUnreserved(code)) {
      const what =
        code === 0x2f ? "an encoded '/'" : code === 0x25 ? "a double-encoded '%'" : "an escape";
      throw badRequest(`${what} (%${path.slice(i + 1, i + 3)}) is not allowed in the URL`);
    }
    out += path.slice(from, i) + String.fromCharCode(code);
    from = i + 3;
  }
  return out + path.slice(from);
}

function hasDotSegment(path: string): boolean {
  for (let start = 0; start < path.length;) {
    let end = path.indexOf("/", start);
    if (end < 0) end = path.length;
    const length = end - start;
    if (
      (length === 1 && path.charCodeAt(start) === 0x2e) ||
      (length === 2 && path.charCodeAt(start) === 0x2e && path.charCodeAt(start + 1) === 0x2e)
    ) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

/** The decoded path of a request target (`req.url`); throws HttpError 400 or 414. */
export function requestPath(target: string): string {
  if (target.length > MAX_TARGET_LENGTH) {
    throw new HttpError(414, `the URL is longer than ${MAX_TARGET_LENGTH} characters`);
  }
  let path = target;
  if (path.charCodeAt(0) !== 0x2f) {
    const absolute = /^https?:\/\/[^/?#]*/i.exec(path);
    if (absolute === null) throw badRequest("the request target is not a path");
    path = path.slice(absolute[0].length);
    if (path === "") path = "/";
    if (path.charCodeAt(0) !== 0x2f) throw badRequest("the request target is not a path");
  }
  if (path.includes("#")) throw badRequest("a fragment is not allowed in the URL");
  const query = path.indexOf("?");
  if (query >= 0) path = path.slice(0, query);
  if (path.includes("%")) path = decodeEscapes(path);
  if (path.includes("/.") && hasDotSegment(path)) {
    throw badRequest("'.' and '..' segments are not allowed in the URL");
  }
  return path;
}
