/**
 * What commands print: lines tagged with their stream, tables laid out by
 * display width, and JSON documents. Writing them is the CLI's job.
 */

import { displayWidth } from "../core/index.js";

/** Revisions are shown cut to this many characters, by every command. */
export const REVISION_WIDTH = 12;

/** A piece of output and the stream it belongs on. */
export interface OutputLine {
  stream: "stdout" | "stderr";
  text: string;
}

/** A table cell's text, and its display width when known (else -1: ask `displayWidth`). */
export interface Cell {
  text: string;
  width: number;
}

const GUTTER = "  ";

/** Lays out rows so that columns line up by display width. */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  return layoutTable(rows.map((row) => row.map((text) => ({ text, width: -1 }))));
}

const SPACES: string[] = [];

function spaces(count: number): string {
  return (SPACES[count] ??= " ".repeat(count));
}

/**
 * `formatTable` for cells whose widths may be known already (-1: not yet;
 * measured widths are written back into the cell). Every column but the last
 * is padded to its widest cell; the rule under the first row spans them all.
 */
export function layoutTable(rows: readonly (readonly Cell[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    let i = 0;
    for (const cell of row) {
      if (cell.width < 0) cell.width = displayWidth(cell.text);
      widths[i] = Math.max(widths[i] ?? 0, cell.width);
      i += 1;
    }
  }
  const lines: string[] = [];
  for (const row of rows) {
    let line = "";
    let i = 0;
    for (const cell of row) {
      line +=
        i === row.length - 1
          ? cell.text
          : cell.text + spaces(Math.max((widths[i] ?? 0) - cell.width, 0)) + GUTTER;
      i += 1;
    }
    lines.push(line);
  }
  const ruleWidth = widths.reduce((sum, w) => sum + w, 0) + GUTTER.length * (widths.length - 1);
  const [header, ...body] = lines;
  return [header ?? "", "-".repeat(ruleWidth), ...body];
}

/**
 * A `--json` result on stdout: indented by two spaces (one document per
 * run), or on one line (`line`: one document per line, for streams).
 */
export function jsonOutput(value: unknown, layout: "document" | "line" = "document"): OutputLine {
  return {
    stream: "stdout",
    text: layout === "line" ? JSON.stringify(value) : JSON.stringify(value, null, 2),
  };
}
