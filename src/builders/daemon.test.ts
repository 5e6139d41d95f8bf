import { readFile, rm } from "node:fs/promises";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import type { FleetBackend, FleetSnapshot, HostValues } from "../fleet/index.js";
import { BuildersDaemon, backoffMs } from "./daemon.js";
import { serializeBuilderEntry, type BuilderEntry } from "./entry.js";
import type { ProbeResult } from "./probe.js";
import { tempDir } from "../../test/support/temp.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmfpbB8F/kw7AL93SctuomQtp0Cs9tOdT7qD6rUD3tF";
const entry = (address: string): BuilderEntry => ({
  uri: `ssh-ng://nix-builder@${address}`,
  systems: ["x86_64-linux"],
  maxJobs: 4,
  speedFactor: 1,
  supportedFeatures: [],
  mandatoryFeatures: [],
  publicHostKey: Buffer.from(KEY).toString("base64"),
});

const noop = (): void => undefined;
const silent = { debug: noop, info: noop, warn: noop, error: noop };

function snapshot(hosts: Record<string, BuilderEntry | string>): FleetSnapshot {
  const map = new Map<string, HostValues>();
  for (const [host, value] of Object.entries(hosts)) {
    const raw = typeof value === "string" ? value : serializeBuilderEntry(value);
    map.set(
      host,
      new Map([
        ["alive", Buffer.from("x")],
        ["builder", Buffer.from(raw)],
      ]),
    );
  }
  return { hosts: map, strayKeys: 0 };
}

/** A backend whose watch delivers the snapshots the test pushes. */
function fakeBackend(): { backend: FleetBackend; push: (s: FleetSnapshot) => void } {
  let deliver: ((s: FleetSnapshot) => void) | undefined;
  const backend = {
    kind: "etcd",
    config: { endpoints: [], namespace: "/n", timeoutSeconds: 1 },
    readHosts: () => Promise.reject(new Error("unused")),
    readTable: () => Promise.reject(new Error("unused")),
    watchHosts: (handlers) => {
      deliver = (s) => {
        handlers.onSnapshot(s);
      };
      return { close: () => Promise.resolve() };
    },
    close: () => Promise.resolve(),
  } satisfies FleetBackend;
  return {
    backend,
    push: (s) => {
      deliver?.(s);
    },
  };
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

/**
 * Retries `check` (an assertion) until it passes; its last failure after 10 s.
 * The daemon works on its own timer, which a loaded machine delays.
 */
async function eventually(check: () => void | Promise<void>): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await settle();
    }
  }
}

describe("backoffMs", () => {
  it("is Hydra's 60·3^(n-1) s, four steps", () => {
    expect([0, 1, 2, 3, 4, 5, 9].map((n) => backoffMs(n, 60_000) / 1000)).toEqual([
      0, 60, 180, 540, 1620, 1620, 1620,
    ]);
  });
});

describe("BuildersDaemon", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDir("builders-daemon");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("drops a failing builder until its backoff ends and a probe answers", async () => {
    let clock = 0;
    const answers = new Map<string, ProbeResult>();
    const probed: string[] = [];
    const { backend, push } = fakeBackend();
    const output = path.join(dir, "machines");
    const daemon = new BuildersDaemon({
      backend,
      localHost: "me",
      output,
      sshKey: "-",
      probe: (e) => {
        probed.push(e.uri);
        return Promise.resolve(answers.get(e.uri) ?? { ok: true, version: "nix 2.8" });
      },
      probeIntervalMs: 1_000_000,
      backoffBaseMs: 60_000,
      log: silent,
      now: () => clock,
    });
    const running = daemon.run();
    answers.set("ssh-ng://nix-builder@b", { ok: false, reason: "Connection refused" });
    push(snapshot({ me: entry("me"), a: entry("a"), b: entry("b"), bad: "{" }));
    // Both probed at once; b failed and is out; this host is never listed.
    await eventually(() => {
      expect([...probed].sort()).toEqual(["ssh-ng://nix-builder@a", "ssh-ng://nix-builder@b"]);
      expect(daemon.listed().map((b) => b.host)).toEqual(["a"]);
    });
    await eventually(async () => {
      expect(await readFile(output, "utf8")).toContain("@a ");
    });
    expect(await readFile(output, "utf8")).not.toContain("@b ");

    // Not probed again before 60 s; at 60 s it fails again (180 s next).
    probed.length = 0;
    clock = 59_999;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(probed).toEqual([]);
    clock = 60_000;
    await eventually(() => {
      expect(probed).toEqual(["ssh-ng://nix-builder@b"]);
    });

    // Answers at 240 s: listed again.
    answers.delete("ssh-ng://nix-builder@b");
    probed.length = 0;
    clock = 239_999;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(probed).toEqual([]);
    clock = 240_000;
    await eventually(() => {
      expect(
        daemon
          .listed()
          .map((b) => b.host)
          .sort(),
      ).toEqual(["a", "b"]);
    });

    // b leaves the fleet: out at once.
    push(snapshot({ a: entry("a") }));
    await eventually(async () => {
      expect(await readFile(output, "utf8")).toBe(
        `ssh-ng://nix-builder@a x86_64-linux - 4 1 - - ${entry("a").publicHostKey}\n`,
      );
    });
    daemon.stop();
    await running;
  });
});
