/**
 * Natural sort: names compared case-insensitively with runs of digits compared
 * as numbers (`web2` before `web10`). Hand-written: `Intl.Collator` costs
 * ~15 ms to create, a tenth of the CLI's whole start-up.
 */

type SortKey = (string | number)[];

/**
 * The key `naturalCompare` orders by: lower-cased text runs and digit runs as
 * numbers (`web2` before `web10`). Digit runs too long for a number compare as
 * zero-stripped text, longer first being larger.
 */
function sortKey(name: string): SortKey {
  const key: SortKey = [];
  for (const part of name.toLowerCase().match(/\d+|\D+/g) ?? []) {
    const code = part.charCodeAt(0);
    if (code >= 48 && code <= 57) {
      const digits = part.replace(/^0+/, "");
      key.push(digits.length <= 15 ? Number(digits) : `\uffff${digits.length}:${digits}`);
    } else {
      key.push(part);
    }
  }
  return key;
}

function compareKeys(a: SortKey, b: SortKey): number {
  for (const [i, x] of a.entries()) {
    const y = b[i];
    if (y === undefined) break;
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return x - y;
    // A number sorts before text at the same position.
    if (typeof x === "number") return -1;
    if (typeof y === "number") return 1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** Plain UTF-16 code unit order: the tie-break after `naturalCompare`'s key. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Compares names case-insensitively with runs of digits compared as numbers
 * (`web2` before `web10`); names equal that way compare by code units.
 */
export function naturalCompare(a: string, b: string): number {
  return compareKeys(sortKey(a), sortKey(b)) || compareText(a, b);
}

/**
 * `sortKey` as one string whose plain string order is `compareKeys`'s order,
 * or undefined outside the fast case: a name that is not printable ASCII, or
 * that has a digit run of more than 15 digits after its leading zeros (those
 * compare as text in `sortKey`). Text runs are kept as they are (every
 * character >= 0x20). A digit run becomes 0x01, a character for its length
 * without leading zeros, and those digits: a number sorts before text at the
 * same position, a shorter number before a longer one, and equal lengths
 * digit by digit. Text and digit runs alternate, so where one key's text run
 * is a prefix of the other's, what follows it (0x01 or the end) sorts first,
 * as the shorter text does in `compareKeys`. Exported for tests.
 */
export function fastSortKey(name: string): string | undefined {
  if (!PRINTABLE_ASCII.test(name) || LONG_NUMBER.test(name)) return undefined;
  return name.toLowerCase().replace(DIGIT_RUN, (run) => {
    let zeros = 0;
    while (run.charCodeAt(zeros) === 48) zeros += 1;
    return `\u0001${String.fromCharCode(0x40 + run.length - zeros)}${run.slice(zeros)}`;
  });
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;
const DIGIT_RUN = /\d+/g;
/** A digit run of more than 15 digits after its leading zeros. */
const LONG_NUMBER = /[1-9]\d{15}/;

/**
 * Sorts items by `name` as `naturalCompare` does, then by `tieBreak` in code
 * unit order, then in input order (stable), computing each item's key once.
 */
export function naturalSortBy<T>(
  items: readonly T[],
  name: (item: T) => string,
  tieBreak: (item: T) => string,
): T[] {
  // Fast case: one string per item, sorted by the engine's own string
  // comparison. The key, then the name, then the tie-break (both printable
  // ASCII in this case), each ended by 0x00, which is below anything that
  // can follow; then the item's index, which keeps the sort stable.
  const keys: string[] = [];
  let i = 0;
  for (const item of items) {
    const shown = name(item);
    const tie = tieBreak(item);
    const key = fastSortKey(shown);
    if (key === undefined || (tie !== shown && !PRINTABLE_ASCII.test(tie))) {
      return sortSlowly(items, name, tieBreak);
    }
    keys.push(`${key}\0${shown}\0${tie}\0${String.fromCharCode(i >>> 16, i & 0xffff)}`);
    i += 1;
  }
  keys.sort();
  const sorted: T[] = [];
  for (const key of keys) {
    const index = (key.charCodeAt(key.length - 2) << 16) | key.charCodeAt(key.length - 1);
    if (index < items.length) sorted.push(items[index] as T);
  }
  return sorted;
}

function sortSlowly<T>(
  items: readonly T[],
  name: (item: T) => string,
  tieBreak: (item: T) => string,
): T[] {
  return items
    .map((item) => {
      const shown = name(item);
      return { item, shown, tie: tieBreak(item), key: sortKey(shown) };
    })
    .sort(
      (a, b) =>
        compareKeys(a.key, b.key) || compareText(a.shown, b.shown) || compareText(a.tie, b.tie),
    )
    .map(({ item }) => item);
}
