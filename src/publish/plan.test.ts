import { describe, expect, it } from "vitest";

import type { FleetField } from "../fleet/index.js";
import { applyChanges, changesState, planPublication, storedValues } from "./plan.js";

const NOW = "2025-06-01T12:00:00.000Z";
const A = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0";
const B = "b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3";

describe("planPublication", () => {
  it("writes every known value and updated_at when nothing is stored", () => {
    const plan = planPublication(
      new Map(),
      { current: A, booted: A, nextboot: B, reboot_required: "false", iris_url: null },
      NOW,
    );
    expect([...plan.changes.put]).toEqual([
      ["current", A],
      ["booted", A],
      ["nextboot", B],
      ["reboot_required", "false"],
      ["updated_at", NOW],
    ]);
    expect(plan.changes.delete).toEqual([]);
    expect(changesState(plan)).toBe(true);
  });

  it("writes only what changed, plus updated_at", () => {
    const stored = new Map([
      ["current", A],
      ["booted", A],
      ["nextboot", A],
      ["reboot_required", "false"],
      ["updated_at", "2025-01-01T00:00:00.000Z"],
    ] as const);
    const plan = planPublication(
      stored,
      { current: A, booted: A, nextboot: B, reboot_required: "false", iris_url: null },
      NOW,
    );
    expect([...plan.changes.put]).toEqual([
      ["nextboot", B],
      ["updated_at", NOW],
    ]);
    expect(plan.fields.map((f) => [f.field, f.change])).toEqual([
      ["current", "unchanged"],
      ["booted", "unchanged"],
      ["nextboot", "written"],
      ["reboot_required", "unchanged"],
      ["iris_url", "absent"],
      ["updated_at", "written"],
    ]);
  });

  it("deletes the keys of unknown values, and leaves absent ones alone", () => {
    const stored = new Map([["current", A]] as const);
    const plan = planPublication(
      stored,
      { current: null, booted: null, nextboot: B, reboot_required: null, iris_url: null },
      NOW,
    );
    expect(plan.changes.delete).toEqual(["current"]);
    expect(plan.fields.map((f) => f.change)).toEqual([
      "deleted",
      "absent",
      "written",
      "absent",
      "absent",
      "written",
    ]);
  });

  it("confirms an unchanged host by updated_at alone", () => {
    const stored = new Map([
      ["current", A],
      ["booted", A],
      ["nextboot", A],
      ["reboot_required", "false"],
    ] as const);
    const plan = planPublication(
      stored,
      { current: A, booted: A, nextboot: A, reboot_required: "false", iris_url: null },
      NOW,
    );
    expect([...plan.changes.put.keys()]).toEqual(["updated_at"]);
    expect(changesState(plan)).toBe(false);
  });
});

describe("applyChanges and storedValues", () => {
  it("tracks what the backend holds after a write", () => {
    const stored = new Map([
      ["current", A],
      ["booted", A],
    ] as const);
    const after = applyChanges(stored, { put: new Map([["current", B]]), delete: ["booted"] });
    expect([...after]).toEqual([["current", B]]);
    expect([...stored]).toEqual([
      ["current", A],
      ["booted", A],
    ]);
  });

  it("decodes stored bytes and leaves alive out", () => {
    const values = new Map<FleetField, Uint8Array>([
      ["alive", Buffer.from("x")],
      ["current", Buffer.from(A)],
      ["reboot_required", Buffer.from("true")],
    ]);
    expect([...storedValues(values)]).toEqual([
      ["current", A],
      ["reboot_required", "true"],
    ]);
  });
});

describe("system paths", () => {
  const SYS = "/nix/store/0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a-nixos-system-web01-23.05";
  it("publishes each state's system path, and deletes one that became unknown", () => {
    const stored = new Map([["booted_system", SYS]] as const);
    const plan = planPublication(
      stored,
      {
        current: A,
        booted: A,
        nextboot: A,
        reboot_required: "false",
        iris_url: null,
        current_system: SYS,
        booted_system: null,
        nextboot_system: SYS,
      },
      NOW,
    );
    expect(plan.changes.put.get("current_system")).toBe(SYS);
    expect(plan.changes.put.get("nextboot_system")).toBe(SYS);
    expect(plan.changes.delete).toEqual(["booted_system"]);
  });
});
