import { describe, expect, it } from "vitest";

import type { FleetField, FleetSnapshot } from "../../fleet/index.js";
import { registryPeerUrls } from "./registry-peers.js";

function snapshot(hosts: Record<string, Partial<Record<FleetField, string>>>): FleetSnapshot {
  return {
    hosts: new Map(
      Object.entries(hosts).map(([host, values]) => [
        host,
        new Map(
          Object.entries(values).map(([field, value]) => [field as FleetField, Buffer.from(value)]),
        ),
      ]),
    ),
    strayKeys: 0,
  };
}

describe("peers from the fleet registry", () => {
  it("takes alive hosts with a valid iris_url, this host excepted", () => {
    const urls = registryPeerUrls(
      snapshot({
        a: { alive: "t", iris_url: "http://10.0.0.1:35742" },
        b: { alive: "t", iris_url: "http://10.0.0.2:35742/" },
        offline: { iris_url: "http://10.0.0.3:35742" },
        "no-irisd": { alive: "t", current: "abc" },
        self: { alive: "t", iris_url: "http://10.0.0.9:35742" },
        "same-url": { alive: "t", iris_url: "http://10.0.0.8:35742" },
        bad: { alive: "t", iris_url: "ftp://10.0.0.4" },
        twin: { alive: "t", iris_url: "http://10.0.0.1:35742" },
      }),
      { host: "self", url: "http://10.0.0.8:35742" },
    );
    expect(urls).toEqual(["http://10.0.0.1:35742", "http://10.0.0.2:35742"]);
  });
});
