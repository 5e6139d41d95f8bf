import { describe, expect, it } from "vitest";

import { OgygiaError } from "./errors.js";
import { EXIT_BUG, errorReport } from "./report.js";

describe("errorReport", () => {
  it("prints a user error's escaped message and its hint, with its exit status", () => {
    const err = new OgygiaError("ERR_OGYGIA_USAGE", "bad \x1b[31mvalue", {
      hint: "try --help",
      exitCode: 2,
    });
    expect(errorReport(err)).toEqual({
      lines: ["error: bad \\x1b[31mvalue", "hint: try --help"],
      exitCode: 2,
    });
  });

  it("puts the program's prefix before the first line only", () => {
    const err = new OgygiaError("ERR_OGYGIA_IRISD_CONFIG", "no such key", { hint: "fix it" });
    expect(errorReport(err, { prefix: "ogygia-irisd: " }).lines).toEqual([
      "ogygia-irisd: error: no such key",
      "hint: fix it",
    ]);
  });

  it("reports anything else as a bug with its stack, exit 70", () => {
    const err = new TypeError("x is undefined");
    const report = errorReport(err, { prefix: "p: ", bug: "a bug in ogygia" });
    expect(report.exitCode).toBe(EXIT_BUG);
    expect(report.lines).toEqual([
      "p: internal error (a bug in ogygia; please report it):",
      err.stack,
    ]);
    expect(errorReport("thrown string").lines).toEqual([
      "internal error (a bug; please report it):",
      "thrown string",
    ]);
  });
});
