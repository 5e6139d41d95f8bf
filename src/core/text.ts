/**
 * Text that reaches a terminal: escaping of untrusted strings, display width,
 * and redaction of credentials.
 */

// C0 controls, DEL, C1 controls, and the bidirectional overrides and isolates
// that can make a terminal show text in an order other than the bytes' order.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * Makes an untrusted string safe to print: every control or bidi character
 * becomes a visible escape (`\x1b`, `\u{202e}`); everything else is kept.
 */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE, (ch) => {
    const code = ch.codePointAt(0) ?? 0;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/** True when the string holds a character `escapeForTerminal` would escape. */
export function hasUnsafeCharacters(text: string): boolean {
  UNSAFE.lastIndex = 0;
  const found = UNSAFE.test(text);
  UNSAFE.lastIndex = 0;
  return found;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Widths of the fixed labels we print, so the common case needs no library. */
const KNOWN_WIDTHS = new Map<string, number>([
  ["⚡ current", 10],
  ["🥾 booted", 9],
  ["🔜 next boot", 12],
]);

type WidthFunction = (text: string) => number;
let libraryWidth: WidthFunction | undefined;

/**
 * Loads the display-width library only if one of `texts` needs it (non-ASCII
 * and not a known label). Call before `displayWidth` on such strings.
 */
export async function prepareDisplayWidth(texts: Iterable<string>): Promise<void> {
  if (libraryWidth) return;
  for (const text of texts) {
    if (!PRINTABLE_ASCII.test(text) && !KNOWN_WIDTHS.has(text)) {
      const mod = await import("string-width");
      libraryWidth = mod.default;
      return;
    }
  }
}

/**
 * Columns a string takes in a terminal (emoji and East Asian wide characters
 * take two). Non-ASCII strings other than our own labels need
 * `prepareDisplayWidth` first.
 */
export function displayWidth(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length;
  const known = KNOWN_WIDTHS.get(text);
  if (known !== undefined) return known;
  if (!libraryWidth) {
    throw new Error(`displayWidth(${JSON.stringify(text)}) called before prepareDisplayWidth`);
  }
  return libraryWidth(text);
}

/** Pads `text` with spaces on the right to `width` display columns. */
export function padEndDisplay(text: string, width: number): string {
  const missing = width - displayWidth(text);
  return missing > 0 ? text + " ".repeat(missing) : text;
}

/** Removes the password (and user) from URLs like `http://user:pw@host:2379`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@");
}
