/**
 * Revision values: what a build-revision file or a fleet key may hold. Values
 * come from files and from other hosts, so they are checked before anyone
 * prints or trusts them.
 */

/** Longest accepted revision value, in bytes. Git hashes are 40 or 64. */
export const MAX_REVISION_BYTES = 256;

export type RevisionParse = { ok: true; revision: string | null } | { ok: false; reason: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Checks a raw revision value. Whitespace around it is ignored; an empty value
 * or the literal `unknown` (what a dirty flake records) means unknown (null).
 * Oversized, non-UTF-8 or control-character values are refused with a reason.
 */
export function parseRevision(raw: Uint8Array | string): RevisionParse {
  if (typeof raw === "string") return parseRevisionText(raw);
  if (raw.byteLength > MAX_REVISION_BYTES) {
    return {
      ok: false,
      reason: `value is ${raw.byteLength} bytes; the limit is ${MAX_REVISION_BYTES}`,
    };
  }
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, reason: "value is not valid UTF-8" };
  }
  const trimmed = text.trim();
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/u.test(trimmed)) {
    return { ok: false, reason: "value contains control characters" };
  }
  if (trimmed === "" || trimmed === "unknown") return { ok: true, revision: null };
  return { ok: true, revision: trimmed };
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const UNKNOWN: RevisionParse = Object.freeze({ ok: true, revision: null });

/**
 * `parseRevision` of a value read as text (a fleet table's value). Printable
 * ASCII, the common case, needs no decoding and has no control characters,
 * and only spaces to trim; anything else is checked as its UTF-8 bytes.
 */
function parseRevisionText(text: string): RevisionParse {
  if (!PRINTABLE_ASCII.test(text)) return parseRevision(Buffer.from(text));
  if (text.length > MAX_REVISION_BYTES) {
    return {
      ok: false,
      reason: `value is ${text.length} bytes; the limit is ${MAX_REVISION_BYTES}`,
    };
  }
  const trimmed =
    text.charCodeAt(0) === 0x20 || text.charCodeAt(text.length - 1) === 0x20 ? text.trim() : text;
  if (trimmed === "" || trimmed === "unknown") return UNKNOWN;
  return { ok: true, revision: trimmed };
}
