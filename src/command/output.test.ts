import { describe, expect, it } from "vitest";

import { displayWidth, padEndDisplay } from "../core/index.js";
import { formatTable, jsonOutput } from "./index.js";

describe("formatTable", () => {
  // The layout as first written: every cell measured, padded, joined.
  function referenceTable(rows: readonly (readonly string[])[]): string[] {
    const widths: number[] = [];
    for (const row of rows) {
      row.forEach((cell, i) => {
        widths[i] = Math.max(widths[i] ?? 0, displayWidth(cell));
      });
    }
    const lines = rows.map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : padEndDisplay(cell, widths[i] ?? 0)))
        .join("  "),
    );
    const ruleWidth = widths.reduce((sum, w) => sum + w, 0) + 2 * (widths.length - 1);
    const [header, ...body] = lines;
    return [header ?? "", "-".repeat(ruleWidth), ...body];
  }

  it("lays out ragged rows of mixed widths exactly as measuring every cell does", async () => {
    const { prepareDisplayWidth } = await import("../core/index.js");
    const cells = ["", "a", "web01", "東京", "🥾 booted", "é", "x y z", "⚡ current", "ＡＢ"];
    await prepareDisplayWidth(cells);
    const rows: string[][] = [];
    for (let i = 0; i < 40; i++) {
      const row: string[] = [];
      for (let j = 0; j < (i * 7) % 5; j++) row.push(cells[(i * 3 + j * 5) % cells.length] ?? "");
      rows.push(row);
    }
    expect(formatTable(rows)).toEqual(referenceTable(rows));
  });

  it("aligns columns by display width and sizes the rule to the widest row", async () => {
    const { prepareDisplayWidth } = await import("../core/index.js");
    await prepareDisplayWidth(["東京"]);
    expect(
      formatTable([
        ["Host", "x"],
        ["東京", "y"],
        ["a", "zzz"],
      ]),
    ).toEqual(["Host  x", "---------", "東京  y", "a     zzz"]);
  });
});

describe("jsonOutput", () => {
  it("prints a document indented by two spaces, or one line for streams", () => {
    expect(jsonOutput({ a: [1] })).toEqual({
      stream: "stdout",
      text: '{\n  "a": [\n    1\n  ]\n}',
    });
    expect(jsonOutput({ a: [1] }, "line")).toEqual({ stream: "stdout", text: '{"a":[1]}' });
  });
});
