import { describe, expect, it } from "vitest";

import { tableFromSnapshot, type HostValues } from "../fleet/index.js";
import { readHostUpdate as readRow, updateMarker } from "./update.js";

const values = (fields: Record<string, string>): HostValues =>
  new Map(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v)])) as HostValues;

/** `readHostUpdate` of a one-host table holding `host`. */
const readHostUpdate = (host: HostValues) =>
  readRow(tableFromSnapshot({ hosts: new Map([["h", host]]), strayKeys: 0 }).values, 0);

describe("a host's published update", () => {
  it("reads the agent's fields, and nothing for a host without them", () => {
    expect(readHostUpdate(values({ current: "abc" }))).toBeNull();
    expect(
      readHostUpdate(
        values({ update_state: "checking", update_target: "/nix/store/x", update_rollout: "r1" }),
      ),
    ).toEqual({
      state: "checking",
      target: "/nix/store/x",
      error: null,
      rollout: "r1",
      startedAt: null,
      changedAt: null,
      finishedAt: null,
    });
  });

  it("marks hosts mid-update, failed and skipped updates, not confirmed ones", () => {
    const of = (state: string) => updateMarker(readHostUpdate(values({ update_state: state })));
    expect(of("checking")).toBe("updating: checking");
    expect(of("rolling-back")).toBe("updating: rolling-back");
    expect(of("waiting-reboot-window")).toBe("updating: waiting-reboot-window");
    expect(of("rebooting")).toBe("updating: rebooting");
    expect(of("rebooting-back")).toBe("updating: rebooting-back");
    expect(of("rolled-back")).toBe("update rolled-back");
    expect(of("failed")).toBe("update failed");
    expect(of("skipped")).toBe("update skipped");
    expect(of("confirmed")).toBeUndefined();
    expect(updateMarker(null)).toBeUndefined();
  });
});
