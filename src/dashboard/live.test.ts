import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";

import { afterEach, describe, expect, it } from "vitest";

import { FleetHub } from "./live.js";
import type { FleetJson, HostJson } from "./wire.js";

/** A response that takes `capacity` frames, then needs a drain. */
class FakeResponse extends EventEmitter {
  frames: string[] = [];
  writableNeedDrain = false;
  constructor(private capacity = Infinity) {
    super();
  }
  write(frame: string): boolean {
    this.frames.push(frame);
    if (this.frames.length >= this.capacity) this.writableNeedDrain = true;
    return !this.writableNeedDrain;
  }
  end(): void {
    this.emit("close");
  }
  drain(more = Infinity): void {
    this.capacity = this.frames.length + more;
    this.writableNeedDrain = false;
    this.emit("drain");
  }
  events(): { id: string; type: string; data: unknown }[] {
    return this.frames
      .filter((f) => f.startsWith("id: "))
      .map((f) => {
        const [id, type, data] = f.trimEnd().split("\n");
        return {
          id: id?.slice(4) ?? "",
          type: type?.slice(7) ?? "",
          data: JSON.parse(data?.slice(6) ?? "null") as unknown,
        };
      });
  }
}

function fleet(hosts: Partial<HostJson>[], error: string | null = null): FleetJson {
  return {
    mode: "etcd",
    configPath: "/c.toml",
    namespace: "/ns",
    error,
    nothingPublished: false,
    warnings: [],
    hosts: hosts.map((h) => ({
      host: "h",
      displayName: "h",
      local: false,
      current: "a",
      booted: "a",
      nextboot: "a",
      online: true,
      rebootRequired: false,
      updatedAt: null,
      ...h,
    })),
  };
}

const hubs: FleetHub[] = [];
function hub(): FleetHub {
  const h = new FleetHub();
  hubs.push(h);
  return h;
}
afterEach(() => {
  for (const h of hubs.splice(0)) h.close();
});

function subscribe(h: FleetHub, res: FakeResponse, lastEventId?: string): void {
  h.subscribe(res as unknown as ServerResponse, lastEventId);
}

describe("FleetHub", () => {
  it("sends a snapshot, then only the hosts that changed or went", () => {
    const h = hub();
    h.update(fleet([{ host: "a" }, { host: "b" }]));
    const res = new FakeResponse();
    subscribe(h, res);
    expect(h.update(fleet([{ host: "a" }, { host: "b" }]))).toBeUndefined();
    h.update(fleet([{ host: "a", current: "z" }]));
    const events = res.events();
    expect(events.map((e) => e.type)).toEqual(["snapshot", "change"]);
    expect(events[1]?.data).toMatchObject({
      upserts: [{ host: "a", current: "z" }],
      removed: ["b"],
    });
    expect(events[1]?.id).toBe(`${h.run}.2`);
  });

  it("keeps the last seen hosts while the backend is unreachable", () => {
    const h = hub();
    h.update(fleet([{ host: "a" }, { host: "b" }]));
    const change = h.update(fleet([], "connection refused"));
    expect(change?.event.removed).toEqual([]);
    expect(h.fleet()?.hosts.map((x) => x.host)).toEqual(["a", "b"]);
    expect(h.fleet()?.error).toBe("connection refused");
  });

  it("resumes from Last-Event-ID of this run, and resyncs any other", () => {
    const h = hub();
    h.update(fleet([{ host: "a" }]));
    h.update(fleet([{ host: "a", current: "b" }]));
    h.update(fleet([{ host: "a", current: "c" }]));
    const resumed = new FakeResponse();
    subscribe(h, resumed, `${h.run}.1`);
    expect(resumed.events().map((e) => [e.type, e.id])).toEqual([
      ["change", `${h.run}.2`],
      ["change", `${h.run}.3`],
    ]);
    const stranger = new FakeResponse();
    subscribe(h, stranger, "0000.2");
    expect(stranger.events().map((e) => e.type)).toEqual(["snapshot"]);
  });

  it("drops a client that falls far behind to one snapshot when it drains", () => {
    const h = hub();
    h.update(fleet([{ host: "a" }]));
    const slow = new FakeResponse(1);
    subscribe(h, slow);
    const big = "x".repeat(64 * 1024);
    for (let i = 0; i < 200; i += 1) h.update(fleet([{ host: "a", current: `${big}${i}` }]));
    // Only what the socket took: nothing piled up for the stalled client.
    expect(slow.frames.length).toBeLessThan(5);
    slow.drain();
    const last = slow.events().at(-1);
    expect(last?.type).toBe("snapshot");
    expect(last?.id).toBe(`${h.run}.201`);
  });
});
