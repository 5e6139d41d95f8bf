import { describe, expect, it } from "vitest";

import { parseRebootWindow } from "../config/index.js";
import { inRebootWindow, mayRebootNow, msUntilWindow } from "./reboot.js";

const at = (h: number, m: number): Date => new Date(2026, 0, 15, h, m, 0, 0);

describe("the reboot window", () => {
  it("parses HH:MM-HH:MM and refuses malformed or empty windows", () => {
    expect(parseRebootWindow("02:00-04:00")).toEqual({ start: 120, end: 240 });
    expect(parseRebootWindow("22:30-24:00")).toEqual({ start: 1350, end: 1440 });
    expect(parseRebootWindow("2:00-4:00")).toBeNull();
    expect(parseRebootWindow("03:00-03:00")).toBeNull();
    expect(parseRebootWindow("25:00-03:00")).toBeNull();
  });

  it("is open from its start up to, not including, its end", () => {
    expect(inRebootWindow("02:00-04:00", at(1, 59))).toBe(false);
    expect(inRebootWindow("02:00-04:00", at(2, 0))).toBe(true);
    expect(inRebootWindow("02:00-04:00", at(3, 59))).toBe(true);
    expect(inRebootWindow("02:00-04:00", at(4, 0))).toBe(false);
  });

  it("may span midnight", () => {
    expect(inRebootWindow("23:00-01:00", at(23, 30))).toBe(true);
    expect(inRebootWindow("23:00-01:00", at(0, 30))).toBe(true);
    expect(inRebootWindow("23:00-01:00", at(12, 0))).toBe(false);
  });

  it("says how long until it opens", () => {
    expect(msUntilWindow("02:00-04:00", at(1, 0))).toBe(60 * 60_000);
    expect(msUntilWindow("02:00-04:00", at(5, 0))).toBe(21 * 60 * 60_000);
    expect(msUntilWindow("02:00-04:00", at(3, 0))).toBe(0);
  });

  it("lets the policy decide: never, always, or inside the window", () => {
    const command = ["systemctl", "reboot"];
    expect(mayRebootNow({ policy: "never", window: "00:00-24:00", command }, at(3, 0))).toBe(false);
    expect(mayRebootNow({ policy: "always", window: "02:00-04:00", command }, at(12, 0))).toBe(
      true,
    );
    expect(mayRebootNow({ policy: "window", window: "02:00-04:00", command }, at(3, 0))).toBe(true);
    expect(mayRebootNow({ policy: "window", window: "02:00-04:00", command }, at(12, 0))).toBe(
      false,
    );
  });
});
